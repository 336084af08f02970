"""What every stage shares: the error a stage raises when it cannot run, the round it runs on, where it writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from apps.catalog.models import Query
from workers.progress import Progress

from ..models import TrainingRound

S = TrainingRound.State


class StageError(RuntimeError):
    """A stage that cannot run: the message says why (no policy, nothing selected, ...)."""


def stage_round(round_id: int) -> TrainingRound:
    """The round a stage runs on, with its project and input policy (refused without a policy)."""
    rnd = TrainingRound.objects.select_related("project", "policy_in").get(pk=round_id)
    if rnd.policy_in is None:
        raise StageError(f"round {rnd.number} has no policy checkpoint: build or train one first")
    return rnd


def searchable_queries(project) -> list[Query]:
    """Train queries a checker can score (a known ground truth), with their tools loaded."""
    return list(
        Query.objects.filter(project=project, split=Query.Split.TRAIN, ground_truth__isnull=False)
        .prefetch_related("query_tools__tool")
        .order_by("id")
    )


def output_dir(rnd: TrainingRound, suffix: str) -> Path:
    """A round's directory under CHECKPOINT_DIR: `<project>/round-<n>-<suffix>`."""
    from django.conf import settings

    return settings.CHECKPOINT_DIR / rnd.project.name / f"round-{rnd.number}-{suffix}"


def checked(progress: Progress | None, check: Callable[[], None] | None) -> Progress | None:
    """`progress` followed by `check()` (which raises to stop a cancelled round) at every report."""
    if check is None:
        return progress

    def report(p: dict) -> None:
        if progress:
            progress(p)
        check()

    return report
