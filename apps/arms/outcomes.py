"""Per-query eval outcomes and paired bootstrap intervals for the arms table: the training app's `eval_outcomes`
and `workers.bootstrap.paired_bootstrap`, as the table reads them."""

from __future__ import annotations

from collections.abc import Sequence

from apps.training.selectors import eval_outcomes
from workers.bootstrap import paired_bootstrap


def run_outcomes(run) -> dict[int, bool] | None:
    """{eval query id: passed (strict)} of a finished EvalRun, or None when it stored no per-query results."""
    return eval_outcomes(eval_run=run) or None


def has_outcomes(run) -> bool:
    return run_outcomes(run) is not None


def paired_interval(before: Sequence[float], after: Sequence[float], *, seed: int = 0) -> dict:
    """{"diff", "low", "high", "n", ...}: after − before on the same queries, with its 95% paired bootstrap interval."""
    return paired_bootstrap(before, after, seed=seed).as_dict()
