"""Difficulty of a query, and iTool's easy / medium / hard buckets for the warm-up curriculum."""

from __future__ import annotations

# Base difficulty per kind: more calls, more choice and more context are harder to get right.
KIND_BASE = {
    "single": 0.10,
    "multiple": 0.30,
    "irrelevance": 0.30,
    "parallel": 0.40,
    "missing_info": 0.45,
    "parallel_multiple": 0.55,
    "multi_hop": 0.60,
}
EASY_MAX = 0.34  # scores below this are easy
MEDIUM_MAX = 0.60  # below this medium, else hard


def difficulty_score(*, kind: str, ground_truth: list | None, n_tools: int) -> float:
    """A score in [0, 1] from the kind, the number of calls and arguments, and the tools to choose from."""
    calls = ground_truth or []
    n_calls = len(calls)
    n_args = sum(len(params) for call in calls for params in call.values() if isinstance(params, dict))
    score = (
        KIND_BASE.get(kind, 0.3) + 0.05 * max(0, n_calls - 1) + 0.03 * max(0, n_args - 1) + 0.02 * max(0, n_tools - 1)
    )
    return round(min(1.0, score), 4)


def difficulty_bucket(score: float) -> str:
    if score < EASY_MAX:
        return "easy"
    if score < MEDIUM_MAX:
        return "medium"
    return "hard"
