"""Training one arm from the round's input policy at the round's budget: preference arms with the round's algorithm
and train settings, SFT arms with the warm-up trainer (one bucket), GRPO with the verifiable reward — each as a
launched training job, as a round trains. Each returns (checkpoint kind, settings used, budget record, training
summary); the caller registers the checkpoint."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from apps.training.models import TrainingRound
from workers.progress import Progress

from .budget import Budget, fitted, grpo_shape
from .data import PREFERENCE_ARMS, SFT_ARMS, arm_data


def _preference_params(rnd: TrainingRound, budget: Budget, seed: int):
    """The round's own algorithm and train settings, trained exactly `budget.steps` steps of `budget.batch`."""
    from workers.train.preference import config_for

    return config_for(
        rnd.algorithm,
        {
            **rnd.hyperparameters.get("train", {}),
            "epochs": 1.0,
            "max_steps": budget.steps,
            "batch_size": budget.batch,
            "seed": seed,
        },
    )


def _job(rnd, output: Path, progress, **fields) -> dict:
    """Train as a round does: a job launched with the training settings (apps.training.stages.train.job_run); the
    trainer's result without its per-step series."""
    from apps.training.stages.train import job_result, job_run
    from workers.train.job import JobSpec

    spec = JobSpec(policy_path=rnd.policy_in.path, output_dir=str(output), **fields)
    return job_result(job_run(spec, output.with_name(f"{output.name}-job"), progress))


def _train_preference(rnd, arm, tokenizer, budget, seed, output: Path, progress):
    params = _preference_params(rnd, budget, seed)
    rows, record = fitted(arm_data(rnd, arm, tokenizer), budget, seed)
    summary = _job(rnd, output, progress, algorithm=rnd.algorithm, config=asdict(params), rows=rows)
    return "preference", asdict(params), record, summary


def _train_sft(rnd, arm, tokenizer, budget, seed, output: Path, progress):
    """Continued SFT at the preference arms' learning rate, warm-up share and length limit, so only the data
    differs; one bucket (no curriculum), one pass over the fitted examples."""
    from workers.train.sft import WarmupConfig

    preference = _preference_params(rnd, budget, seed)
    config = WarmupConfig(
        epochs=1.0,
        learning_rate=preference.learning_rate,
        batch_size=budget.batch,
        max_length=preference.max_length,
        cumulative=False,
        warmup_steps=round(preference.warmup_ratio * budget.steps),
        seed=seed,
        max_steps_per_bucket=budget.steps,
        logging_steps=preference.logging_steps,
    )
    examples, record = fitted(arm_data(rnd, arm, tokenizer), budget, seed)
    summary = _job(rnd, output, progress, algorithm="sft", config=asdict(config), examples={"easy": examples})
    return "sft", asdict(config), record, summary


def _train_grpo(rnd, arm, tokenizer, budget, seed, output: Path, progress):
    """GRPO on the selected queries with the checker's graded reward; one step = P prompts × G completions =
    the budget's batch (`budget.grpo_shape`), at the preference arms' learning rate."""
    from apps.training.policy import query_prompt
    from apps.training.stages.train import reward_spec
    from workers.train.grpo import GRPOParams

    shape = grpo_shape(budget)
    preference = _preference_params(rnd, budget, seed)
    params = GRPOParams(
        num_generations=shape.generations,
        batch_size=shape.prompts,
        epochs=1.0,
        max_steps=budget.steps,
        learning_rate=preference.learning_rate,
        seed=seed,
        logging_steps=preference.logging_steps,
    )
    prompt_budget = replace(budget, batch=shape.prompts)  # GRPO's dataset rows are prompts
    queries, record = fitted(arm_data(rnd, arm, tokenizer), prompt_budget, seed)
    record = {
        **record,
        **budget.as_dict(),
        "prompts_per_step": shape.prompts,
        "completions_per_prompt": shape.generations,
        "fitted": f"{record['fitted']}; each step samples {shape.prompts} prompt(s) × {shape.generations} "
        f"completions = {budget.batch}",
    }
    prompts = [{"prompt": query_prompt(tokenizer, q), "reward": reward_spec(params.reward, q)} for q in queries]
    summary = _job(rnd, output, progress, algorithm="grpo", config=asdict(params), prompts=prompts)
    return "grpo", asdict(params), record, summary


TRAINERS = {
    **{arm: _train_preference for arm in PREFERENCE_ARMS},
    **{arm: _train_sft for arm in SFT_ARMS},
    "grpo": _train_grpo,
}


def arm_train(
    *, rnd: TrainingRound, arm: str, budget: Budget, seed: int, output: Path, progress: Progress | None = None
) -> tuple[str, dict, dict, dict]:
    """Train `arm` with `seed` into `output`: (checkpoint kind, settings, budget record, training summary)."""
    from apps.training.policy import policy_tokenizer

    tokenizer = policy_tokenizer(rnd.policy_in)
    return TRAINERS[arm](rnd, arm, tokenizer, budget, seed, output, progress)
