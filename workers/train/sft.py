"""Warm-up SFT (round 0): iTool's easy-to-hard curriculum, one TRL SFTTrainer pass per difficulty bucket."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from workers.config import EngineConfig, Rule, above, at_least
from workers.progress import Progress

BUCKETS = ("easy", "medium", "hard")  # iTool: warm up on easy data first, then medium, then hard
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")  # transformers' schedules offered


@dataclass(frozen=True)
class WarmupConfig(EngineConfig):
    label: ClassVar[str] = "sft"

    epochs: float = 3.0  # passes over each bucket
    learning_rate: float = 3e-3  # a tiny model trained from scratch; use ~2e-5 for a pretrained 7B model
    batch_size: int = 32
    max_length: int = 384  # tokens per example (prompt + answer), or per packed row
    cumulative: bool = True  # stage k trains on buckets 1..k (easy, +medium, +hard) rather than bucket k alone
    packing: bool = False  # pack several examples per row (BFD): far fewer padded tokens for short examples
    warmup_steps: int = 10  # linear warm-up of the learning rate at the start of each bucket
    weight_decay: float = 0.0
    adam_beta2: float = 0.999  # transformers' default; 0.95 (nanoGPT's) trains a from-scratch tiny model faster
    lora: bool = False  # LoRA adapters through PEFT instead of full fine-tuning
    lora_r: int = 16
    lora_alpha: int = 32
    seed: int = 0
    max_steps_per_bucket: int = -1  # cap for quick runs; -1 = the epochs decide
    # Optimizer steps over all stages, shared out in proportion to each stage's rows (a stage gets at least one);
    # -1 = the epochs decide. A step budget keeps the warm-up's time fixed whatever the data size.
    max_steps: int = -1
    lr_scheduler_type: str = "linear"  # transformers' schedule within each stage ("cosine" for a from-scratch model)
    # Batches of examples of similar length (as transformers' LengthGroupedSampler makes them): random batches
    # of the demo's data pad to about twice their tokens. Off = a plain random order within each stage.
    group_by_length: bool = True
    # TRL's per-step entropy and token-accuracy metrics run an extra tiled pass over the LM head on every step;
    # on a tiny model that is ~30% of the step (docs/experiments.md: 290 → 210 ms). Off = plain NLL.
    token_metrics: bool = False
    logging_steps: int = 10

    def rules(self) -> list[Rule]:
        return [
            *above(self, 0, "epochs", "learning_rate"),
            *at_least(self, 1, "batch_size"),
            *at_least(self, 8, "max_length"),
            ("max_steps", self.max_steps == -1 or self.max_steps >= 1, "must be -1 (the epochs decide) or positive"),
            (
                "max_steps",
                self.max_steps < 1 or self.max_steps_per_bucket < 1,
                "must be -1 when max_steps_per_bucket is set: set max_steps (all stages) or max_steps_per_bucket "
                "(each stage), not both",
            ),
            ("adam_beta2", 0 < self.adam_beta2 < 1, "must be in (0, 1)"),
            (
                "lr_scheduler_type",
                self.lr_scheduler_type in LR_SCHEDULERS,
                f"must be one of {', '.join(LR_SCHEDULERS)}",
            ),
        ]


@dataclass
class BucketResult:
    bucket: str
    examples: int
    steps: int
    first_loss: float
    last_loss: float
    seconds: float


def stage_steps(stage_rows: Sequence[int], total: int) -> list[int]:
    """`total` optimizer steps shared out over stages in proportion to their rows (largest remainder; each stage
    gets at least one step, so a budget smaller than the number of stages is raised to it)."""
    if not stage_rows:
        return []
    rows = sum(stage_rows)
    total = max(total, len(stage_rows))
    exact = [total * r / rows for r in stage_rows]
    steps = [max(1, math.floor(x)) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    for i in order:
        if sum(steps) >= total:
            break
        steps[i] += 1
    while sum(steps) > total:  # the minimum of one step pushed it over: take back from the largest
        steps[steps.index(max(steps))] -= 1
    return steps


def curriculum_order(
    stage_rows: Sequence[Sequence[int]],
    stage_steps_: Sequence[int],
    batch_size: int,
    lengths: Sequence[int],
    seed: int,
    group_by_length: bool = True,
) -> list[int]:
    """The order in which one trainer sees the examples: stage after stage, each stage's `steps × batch_size`
    indices drawn from its rows (reshuffled on every pass through them). With `group_by_length`, each stage's
    indices are cut into megabatches of 50 batches, sorted by length inside a megabatch and the batches of a
    stage shuffled, as transformers' LengthGroupedSampler does: batches of similar length pad far less."""
    import random

    rng = random.Random(seed)
    order: list[int] = []
    for rows, steps in zip(stage_rows, stage_steps_):
        need, picked = steps * batch_size, []
        while len(picked) < need:
            shuffled = list(rows)
            rng.shuffle(shuffled)
            picked += shuffled[: need - len(picked)]
        if group_by_length:
            mega = 50 * batch_size
            batches = []
            for start in range(0, len(picked), mega):
                part = sorted(picked[start : start + mega], key=lambda i: lengths[i])
                batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
            rng.shuffle(batches)
            picked = [i for batch in batches for i in batch]
        order += picked
    return order


def _trainer_class(token_metrics: bool, order: list[int], n_rows: int):
    """TRL's SFTTrainer reading the examples in `order` (the curriculum), and — without token metrics — with
    the model's own NLL over the completion labels as its loss (the same loss, without TRL's fused LM-head pass
    that also computes entropy and top-1 accuracy for every token)."""
    from torch.utils.data import Sampler
    from trl import SFTTrainer

    class CurriculumSampler(Sampler):
        def __iter__(self):
            return iter(order)

        def __len__(self):
            return len(order)

    class CurriculumSFTTrainer(SFTTrainer):
        def _get_train_sampler(self, *args, **kwargs):
            # TRL drops examples with no completion token left after truncation; the order indexes the rows given
            if len(self.train_dataset) != n_rows:
                raise ValueError(
                    f"{n_rows - len(self.train_dataset)} examples have no completion "
                    f"token left within max_length={self.args.max_length}: raise max_length or "
                    f"leave out the examples whose prompt is longer"
                )
            return CurriculumSampler()

        if not token_metrics:

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "labels")}
                outputs = model(**inputs, use_cache=False)
                return (outputs.loss, outputs) if return_outputs else outputs.loss

    return CurriculumSFTTrainer


class _LossLog:
    """A TrainerCallback collecting the training loss by stage (and forwarding progress)."""

    def __init__(self, progress: Progress | None, stage_ends: Sequence[tuple[str, int]]):
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step in outer.stage_end_steps:
                    outer.step_times[state.global_step] = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    bucket = outer.bucket_at(state.global_step)
                    outer.losses.setdefault(bucket, []).append(float(logs["loss"]))
                    if outer.progress:
                        outer.progress(
                            {
                                "stage": "train",
                                "bucket": bucket,
                                "step": state.global_step,
                                "max_steps": state.max_steps,
                                "loss": float(logs["loss"]),
                            }
                        )

        self.losses: dict[str, list[float]] = {}
        self.step_times: dict[int, float] = {}  # when each stage's last step ended
        self.stage_end_steps = {end for _, end in stage_ends}
        self.progress, self.stage_ends = progress, list(stage_ends)
        self.callback = Callback()

    def bucket_at(self, step: int) -> str:
        """The stage a global step (1-based) belongs to."""
        for bucket, end in self.stage_ends:
            if step <= end:
                return bucket
        return self.stage_ends[-1][0]


def warmup_sft(
    model_path: str | Path,
    output_dir: str | Path,
    examples: Mapping[str, Sequence[dict]],
    config: WarmupConfig = WarmupConfig(),
    progress: Progress | None = None,
) -> list[BucketResult]:
    """Fine-tune the policy at `model_path` on `{"prompt", "completion"}` examples, stage by stage in
    BUCKETS order (easy first), and save it (model + tokenizer) to `output_dir`. Loss is on the completion only.

    The stages run in one TRL trainer — one optimizer and one learning-rate schedule over the whole warm-up —
    whose sampler serves stage 1's examples first, then stage 2's, then stage 3's: restarting the schedule and
    the optimizer at every stage cost a from-scratch tiny model most of what it had learnt (docs/experiments.md).
    """
    import torch
    from trl import SFTConfig

    from workers.train.common import load_policy, per_device, save_trained, trl_trainer

    tokenizer, model = load_policy(model_path, config)
    eos = tokenizer.eos_token or ""
    rows: list[dict] = []  # every example once; stages are lists of indices into it
    stages: list[tuple[str, list[int]]] = []
    seen: list[int] = []
    for bucket in BUCKETS:
        fresh = list(range(len(rows), len(rows) + len(examples.get(bucket, []))))
        rows += [
            {
                "prompt": e["prompt"],
                "completion": e["completion"] if e["completion"].endswith(eos) else e["completion"] + eos,
            }
            for e in examples.get(bucket, [])
        ]
        if fresh:
            # Cumulative: each stage adds the harder bucket to what came before, so the model does not forget
            # single calls while it learns parallel and multi-hop ones.
            seen += fresh
            stages.append((bucket, list(seen) if config.cumulative else fresh))
    if not stages:
        raise ValueError("no examples to warm up on")
    if config.max_steps > 0:
        budgets = stage_steps([len(ids) for _, ids in stages], config.max_steps)
    elif config.max_steps_per_bucket > 0:
        budgets = [config.max_steps_per_bucket] * len(stages)
    else:
        budgets = [max(1, math.ceil(config.epochs * len(ids) / config.batch_size)) for _, ids in stages]
    lengths = [len(r["prompt"]) + len(r["completion"]) for r in rows]  # characters: enough to group by
    order = curriculum_order(
        [ids for _, ids in stages],
        budgets,
        config.batch_size,
        lengths,
        config.seed,
        config.group_by_length and not config.packing,
    )
    stage_ends, total = [], 0
    for (bucket, _), steps in zip(stages, budgets):
        total += steps
        stage_ends.append((bucket, total))
    trainer_class = _trainer_class(
        config.token_metrics or config.packing, order, len(rows)
    )  # packed rows need TRL's loss
    log = _LossLog(progress, stage_ends)
    with tempfile.TemporaryDirectory(prefix="itool-sft-") as scratch:
        args = SFTConfig(
            # the curriculum is cut into steps of batch_size examples; several processes share each step
            output_dir=scratch,
            max_steps=total,
            per_device_train_batch_size=per_device(config.batch_size),
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_steps,
            lr_scheduler_type=config.lr_scheduler_type,
            weight_decay=config.weight_decay,
            adam_beta2=config.adam_beta2,
            max_length=config.max_length,
            completion_only_loss=True,
            packing=config.packing,
            logging_steps=config.logging_steps,
            save_strategy="no",
            report_to="none",
            seed=config.seed,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
            dataloader_num_workers=0,
            # TRL turns bf16 on by default: on a CPU that means bf16 autocast, emulated where the CPU lacks bf16
            # instructions (3× slower steps here) and too coarse for a small model trained from scratch
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
            gradient_checkpointing=False,  # TRL turns it on by default; it only pays off for large models
        )
        trainer = trl_trainer(trainer_class, rows, model=model, args=args, tokenizer=tokenizer, callback=log.callback)
        start = time.perf_counter()
        output = trainer.train()
        save_trained(trainer, tokenizer, output_dir, config.lora)
    results, begun = [], start
    for ((bucket, ids), steps), (_, end) in zip(zip(stages, budgets), stage_ends):
        ended = log.step_times.get(end, time.perf_counter())
        losses = log.losses.get(bucket) or [output.training_loss]
        results.append(BucketResult(bucket, len(ids), steps, losses[0], losses[-1], ended - begun))
        begun = ended
    return results


def results_summary(results: list[BucketResult]) -> dict:
    return {"buckets": [asdict(r) for r in results], "final_loss": results[-1].last_loss if results else math.nan}
