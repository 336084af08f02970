"""The training budget every arm gets: the round's own optimizer steps × batch size, and how each arm's data is
fitted to it (cycled when it has fewer examples than steps × batch, subsampled when it has more)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from apps.training.models import TrainingRound

GRPO_MAX_GENERATIONS = 8  # completions per prompt at most: GRPOParams.num_generations' default (TRL's)


class BudgetError(ValueError):
    """The round's budget cannot be read, or an arm cannot be trained at it; the message says why."""


@dataclass(frozen=True)
class Budget:
    steps: int  # optimizer steps
    batch: int  # sequences (pairs, examples, completions) per optimizer step, over all processes
    source: str  # where the figures come from

    @property
    def sequences(self) -> int:
        return self.steps * self.batch

    def as_dict(self) -> dict:
        return {**asdict(self), "sequences": self.sequences}


def round_budget(rnd: TrainingRound) -> Budget:
    """The round's training budget: the steps its trained checkpoint records (× its batch size × world size), or,
    before it has trained, the steps its snapshot and train settings give (as TRL counts them: ⌈epochs ×
    ⌈pairs / batch⌉⌉, or max_steps)."""
    from workers.train.preference import ALGORITHMS, config_for

    if rnd.algorithm not in ALGORITHMS:
        raise BudgetError(
            f"round {rnd.number} trains {rnd.algorithm}: arms compare training data from a preference "
            f"round ({', '.join(ALGORITHMS)}), whose pairs and trees they are built from"
        )
    try:
        params = config_for(rnd.algorithm, rnd.hyperparameters.get("train", {}))
    except ValueError as exc:
        raise BudgetError(f"round {rnd.number}'s train settings: {exc}") from None
    out = rnd.policy_out
    if out is not None and isinstance(out.config.get("steps"), int) and out.config["steps"] > 0:
        trained = out.config.get("config") or {}
        batch = trained.get("batch_size", params.batch_size) * int(out.config.get("world_size") or 1)
        return Budget(out.config["steps"], batch, f"checkpoint #{out.pk} ({out.name}): {out.config['steps']} steps")
    if rnd.snapshot_id is None:
        raise BudgetError(
            f"round {rnd.number} has neither trained nor frozen a snapshot: its training budget "
            "(optimizer steps × batch) is not known yet; launch its training first"
        )
    pairs = rnd.snapshot.pair_count
    if pairs == 0:
        raise BudgetError(f"round {rnd.number}'s snapshot #{rnd.snapshot_id} is empty: no training budget to match")
    steps = (
        params.max_steps if params.max_steps > 0 else math.ceil(params.epochs * math.ceil(pairs / params.batch_size))
    )
    return Budget(
        steps,
        params.batch_size,
        f"snapshot #{rnd.snapshot_id} ({pairs} pairs) at batch {params.batch_size} × {params.epochs:g} epochs",
    )


def fitted(examples: list, budget: Budget, seed: int) -> tuple[list, dict]:
    """`examples` cycled or subsampled to exactly `budget.sequences` items — whole shuffled passes, then part of
    one more (seeded) — and a record of what was done. Trained one epoch, that is exactly `budget.steps` full
    batches whatever the arm's size."""
    if not examples:
        raise BudgetError("no examples to fit to the budget")
    rng = random.Random(seed)
    out: list = []
    while len(out) < budget.sequences:
        order = list(examples)
        rng.shuffle(order)
        out.extend(order[: budget.sequences - len(out)])
    passes = budget.sequences / len(examples)
    how = (
        f"{len(examples)} examples cycled {passes:.2f} times"
        if passes >= 1
        else f"{budget.sequences} of {len(examples)} examples (a seeded subsample)"
    )
    return out, {**budget.as_dict(), "examples": len(examples), "passes": round(passes, 4), "fitted": how}


@dataclass(frozen=True)
class GRPOShape:
    """One GRPO optimizer step: `prompts` prompts × `generations` completions = the budget's batch."""

    prompts: int
    generations: int


def grpo_shape(budget: Budget) -> GRPOShape:
    """GRPO's batch counts prompts, each sampled `generations` times (rewards normalised within a group): the
    budget's batch becomes prompts × completions with the most completions per prompt (2 ≤ g ≤ 8) that divide
    it, else one prompt with `batch` completions. BudgetError for a batch below 2 (no group to normalise in)."""
    if budget.batch < 2:
        raise BudgetError(
            f"arm 'grpo' cannot match a batch of {budget.batch}: GRPO needs at least 2 completions per "
            "prompt per step (rewards are normalised within each prompt's group)"
        )
    for generations in range(min(GRPO_MAX_GENERATIONS, budget.batch), 1, -1):
        if budget.batch % generations == 0:
            return GRPOShape(budget.batch // generations, generations)
    return GRPOShape(1, budget.batch)
