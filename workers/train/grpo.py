"""Online GRPO (FTRL's training): sample completions, score them with verifiable rewards, update; through TRL.

No pairs, so no search or review: `train_grpo` takes prompts and one reward callable per prompt (the project's
checker grade or FTRL's Solve-F1 step reward), generates with transformers (no vLLM needed), and saves the
policy with `save_pretrained`. Each dataset row carries its index in the `idx` column, which TRL passes to the
reward function, so completion k of prompt i is scored by `rewards[i]`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from workers.config import EngineConfig, Rule, above, at_least
from workers.progress import Progress
from workers.train.common import (
    TrainLog,
    across_ranks,
    last_checkpoint,
    load_policy,
    per_device,
    save_trained,
    training_arguments,
    trimmed,
    trl_trainer,
)

LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo")  # TRL's token aggregation modes (GRPOConfig.loss_type)
REWARDS = ("checker", "solve_f1")  # the round's reward function (apps.training.stages.train.reward_spec)


@dataclass(frozen=True)
class GRPOParams(EngineConfig):
    label: ClassVar[str] = "grpo"

    # Sampled per prompt; rewards are normalised within each group. TRL's default; FTRL samples 16 (rollout.n).
    num_generations: int = 8
    # The tiny model's answers are 10-60 tokens. FTRL: 1024 (data.max_response_length); TRL's default: 512.
    max_completion_length: int = 64
    # For the tiny model. For a 7B use FTRL's 1e-6 (actor.optim.lr), also TRL's default.
    learning_rate: float = 5e-5
    beta: float = 0.001  # KL to the reference policy: FTRL's kl_loss_coef. TRL's default 0.0 loads no reference
    temperature: float = 1.0  # sampling temperature: TRL's (and verl's) default
    entropy_coef: float = 0.001  # entropy bonus: FTRL's actor.entropy_coeff; TRL's default 0.0
    loss_type: str = "dapo"  # TRL's default: token-level aggregation, as verl's token-mean that FTRL trains with
    epochs: float = 1.0  # FTRL: trainer.total_epochs=1
    max_steps: int = -1  # cap for quick runs; -1 = the epochs decide
    # Prompts per optimisation step, each sampled num_generations times (TRL's per-device batch counts
    # completions: this x num_generations). FTRL: 32 prompts per mini-batch (ppo_mini_batch_size) for a 7B.
    batch_size: int = 4
    lora: bool = False  # LoRA adapters through PEFT (merged into the saved model) instead of full fine-tuning
    lora_r: int = 16
    lora_alpha: int = 32
    seed: int = 0
    logging_steps: int = 10
    save_steps: int = 100  # a resumable checkpoint every this many steps (only with a checkpoint_dir)
    keep_checkpoints: int = 2
    # What scores a completion in a round: "checker" (the graded verdict against the ground truth) or
    # "solve_f1" (FTRL's step reward: its calls run in the sandbox, 2·solved / (calls + 1); needs executable
    # tools and sub-answers). `train_grpo` itself takes the reward callables; the round builds them from this.
    reward: str = "checker"

    def rules(self) -> list[Rule]:
        return [
            ("reward", self.reward in REWARDS, f"must be one of {', '.join(REWARDS)}"),
            ("num_generations", self.num_generations >= 2, "must be >= 2: rewards are normalised within a group"),
            *at_least(self, 1, "max_completion_length"),
            *above(self, 0, "learning_rate"),
            *at_least(self, 0, "beta"),
            *above(self, 0, "temperature"),
            *at_least(self, 0, "entropy_coef"),
            ("loss_type", self.loss_type in LOSS_TYPES, f"must be one of {', '.join(LOSS_TYPES)}"),
            *above(self, 0, "epochs"),
            ("max_steps", self.max_steps == -1 or self.max_steps >= 1, "must be -1 (no cap) or >= 1"),
            *at_least(self, 1, "batch_size", "lora_r", "lora_alpha", "logging_steps", "save_steps", "keep_checkpoints"),
        ]


@dataclass
class GRPOResult:
    algorithm: str
    prompts: int
    steps: int  # global step reached (counting the steps done before a resume)
    resumed_from_step: int  # 0 when the run started fresh
    completions: int  # completions sampled and scored in this call
    first_loss: float
    last_loss: float
    first_reward: float  # mean reward of the first generation batch of this call
    last_reward: float  # ... and of the last
    mean_reward: float  # over every completion scored in this call
    seconds: float  # in the training loop (generation, scoring and updates)
    total_seconds: float  # the whole call: loading, training, saving
    tokens: int  # prompt + completion tokens processed in this call
    tokens_per_second: float
    losses: list[float] = field(default_factory=list)  # logged training losses (trimmed)
    rewards: list[float] = field(default_factory=list)  # mean reward of each generation batch (trimmed)
    world_size: int = 1  # processes that trained together (workers/train/launch.py); counts are over all of them
    prompts_seen: int = 0  # distinct prompts whose completions were scored in this call, over all processes


class _RoutedReward:
    """TRL reward function: completion k of the batch is scored by rewards[idx[k]], idx being the dataset column."""

    __name__ = "verifiable_reward"  # TRL names its logged metrics after the function

    def __init__(self, rewards: Sequence[Callable[[str], float]]):
        self.rewards = rewards
        self.batch_means: list[float] = []
        self.scored, self.total = 0, 0.0
        self.prompts: set[int] = set()  # which prompts' completions were scored

    def __call__(self, prompts: list[str], completions: list[str], idx: list[int], **_) -> list[float]:
        scores = [float(self.rewards[i](completion)) for i, completion in zip(idx, completions, strict=True)]
        self.batch_means.append(sum(scores) / len(scores))
        self.scored += len(scores)
        self.total += sum(scores)
        self.prompts.update(idx)
        return scores


def train_grpo(
    model_path: str | Path,
    output_dir: str | Path,
    prompts: Sequence[str],
    rewards: Sequence[Callable[[str], float]],
    config: GRPOParams = GRPOParams(),
    progress: Progress | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress_tokens: bool = False,
) -> GRPOResult:
    """GRPO on rendered `prompts`, `rewards[i](completion)` scoring a completion of `prompts[i]`; saves to `output_dir`.

    `progress` receives {"step", "max_steps", "loss", "epoch", "reward"} (reward: the logged batch mean; plus
    "tokens_per_second" with `progress_tokens`). Checkpoints and `resume` work as in `train_preference`; so does
    `config.batch_size` on several processes (prompts per step over all of them).
    """
    start = time.perf_counter()
    if not isinstance(config, GRPOParams):
        raise ValueError("config must be a GRPOParams")
    if not prompts:
        raise ValueError("no prompts to train on")
    if len(rewards) != len(prompts):
        raise ValueError(f"one reward function per prompt: {len(prompts)} prompts, {len(rewards)} rewards")
    for index, (prompt, reward) in enumerate(zip(prompts, rewards, strict=True)):
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"prompt {index}: expected non-empty text, got {prompt!r:.60}")
        if not callable(reward):
            raise ValueError(f"reward {index}: expected a callable scoring a completion, got {type(reward).__name__}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir the interrupted run wrote to")
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, model = load_policy(model_path, config)
    routed = _RoutedReward(rewards)
    with tempfile.TemporaryDirectory(prefix="itool-grpo-") as scratch:
        common = training_arguments(config, checkpoint_dir or scratch, save_checkpoints=checkpoint_dir is not None)
        args = GRPOConfig(
            num_generations=config.num_generations,
            max_completion_length=config.max_completion_length,
            per_device_train_batch_size=per_device(
                config.batch_size * config.num_generations, "batch_size x num_generations"
            ),
            num_train_epochs=config.epochs,
            beta=config.beta,
            temperature=config.temperature,
            entropy_coef=config.entropy_coef,
            loss_type=config.loss_type,
            **common,
        )
        trainer = None
        log = TrainLog(
            progress,
            extra=("reward",),  # TRL counts tokens over all processes
            tokens=(lambda: trainer.state.num_input_tokens_seen) if progress_tokens else None,
        )
        trainer = trl_trainer(
            GRPOTrainer,
            [{"prompt": p, "idx": i} for i, p in enumerate(prompts)],
            model=model,
            args=args,
            tokenizer=tokenizer,
            callback=log.callback,
            reward_funcs=[routed],
        )
        checkpoint = last_checkpoint(checkpoint_dir) if resume else None
        train_start = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=checkpoint)
        seconds = time.perf_counter() - train_start
        tokens = int(trainer.state.num_input_tokens_seen - log.start_tokens)  # TRL counts prompt + completion
        save_trained(trainer, tokenizer, output_dir, config.lora)
        per_rank = across_ranks(trainer, (routed.scored, routed.total, routed.batch_means, sorted(routed.prompts)))
    losses = log.losses or [output.training_loss]
    scored, total = sum(r[0] for r in per_rank), sum(r[1] for r in per_rank)
    # each process scores an equal share of every generation batch: the batch's mean is the mean of the shares
    means = [sum(shares) / len(shares) for shares in zip(*(r[2] for r in per_rank))] or [float("nan")]  # nan:
    # nothing was generated (resumed at the last step)
    return GRPOResult(
        algorithm="grpo",
        prompts=len(prompts),
        steps=output.global_step,
        resumed_from_step=log.start_step,
        completions=scored,
        first_loss=losses[0],
        last_loss=losses[-1],
        first_reward=means[0],
        last_reward=means[-1],
        mean_reward=total / scored if scored else float("nan"),
        seconds=seconds,
        total_seconds=time.perf_counter() - start,
        tokens=tokens,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        losses=trimmed(losses),
        rewards=trimmed(means),
        world_size=len(per_rank),
        prompts_seen=len({i for r in per_rank for i in r[3]}),
    )
