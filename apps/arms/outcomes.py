"""Per-query eval outcomes and paired bootstrap intervals for the arms table, read through the training app's
selector (`eval_outcomes`) and `workers.bootstrap.paired_bootstrap`.

Thin adapter: while those two are not in the tree, outcomes are None (the table shows means without intervals).
Delete the fallbacks once both have landed."""
from __future__ import annotations

from collections.abc import Sequence


def run_outcomes(run) -> dict[int, bool] | None:
    """{eval query id: passed (strict)} of a finished EvalRun, or None when per-query results are not stored."""
    try:
        from apps.training.selectors import eval_outcomes
    except ImportError:
        return None
    outcomes = eval_outcomes(eval_run=run)
    return outcomes or None


def has_outcomes(run) -> bool:
    try:
        from apps.training.selectors import eval_outcomes  # noqa: F401
    except ImportError:
        return True  # nothing stores per-query outcomes yet: any finished run of the same size will do
    return run_outcomes(run) is not None


def paired_interval(before: Sequence[float], after: Sequence[float], *, seed: int = 0) -> dict | None:
    """{"diff", "low", "high", "n"}: after − before on the same queries, with its 95% paired bootstrap interval."""
    try:
        from workers.bootstrap import paired_bootstrap
    except ImportError:
        return None
    result = paired_bootstrap(before, after, seed=seed)
    return {"diff": result.diff, "low": result.low, "high": result.high, "n": result.n}
