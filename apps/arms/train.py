"""Training one arm from the round's input policy at the round's budget: preference arms with the round's algorithm
and train settings, SFT arms with the warm-up trainer (one bucket), GRPO with the verifiable reward. Each returns
(checkpoint kind, settings used, budget record, training summary); the caller registers the checkpoint."""

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


def _train_preference(rnd, arm, tokenizer, budget, seed, output: Path, progress):
    from workers.train.preference import train_preference

    params = _preference_params(rnd, budget, seed)
    rows, record = fitted(arm_data(rnd, arm, tokenizer), budget, seed)
    result = train_preference(rnd.policy_in.path, output, rows, params, progress=progress)
    summary = {k: v for k, v in asdict(result).items() if k != "losses"}
    return "preference", asdict(params), record, summary


def _train_sft(rnd, arm, tokenizer, budget, seed, output: Path, progress):
    """Continued SFT at the preference arms' learning rate, warm-up share and length limit, so only the data
    differs; one bucket (no curriculum), one pass over the fitted examples."""
    from workers.train.sft import WarmupConfig, results_summary, warmup_sft

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
    results = warmup_sft(rnd.policy_in.path, output, {"easy": examples}, config, progress=progress)
    return "sft", asdict(config), record, results_summary(results)


def _train_grpo(rnd, arm, tokenizer, budget, seed, output: Path, progress):
    """GRPO on the selected queries with the checker's graded reward; one step = P prompts × G completions =
    the budget's batch (`budget.grpo_shape`), at the preference arms' learning rate."""
    from apps.training.policy import query_prompt
    from apps.training.stages.train import reward_fn
    from workers.train.grpo import GRPOParams, train_grpo

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
    result = train_grpo(
        rnd.policy_in.path,
        output,
        [query_prompt(tokenizer, q) for q in queries],
        [reward_fn(params.reward, q) for q in queries],
        params,
        progress=progress,
    )
    summary = {k: v for k, v in asdict(result).items() if k not in ("losses", "rewards")}
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
