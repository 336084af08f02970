"""Reads of checkpoints and evaluation results: the project's newest policy, per-query outcomes of a run (for
paired bootstraps) and the failures browser."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Checkpoint, EvalResult, EvalRun

FAILURES_PAGE_MAX = 200  # rows per page of the failures browser (and the API's page-size cap)


def checkpoint_latest(*, project) -> Checkpoint | None:
    """The project's newest checkpoint of its loop — not an arm's (a controlled comparison's side branch, whose
    config names its arm), which no round continues from."""
    return (
        Checkpoint.objects.filter(project=project).exclude(config__has_key="arm").order_by("-created_at", "-pk").first()
    )


def eval_outcomes(*, eval_run: EvalRun) -> dict[int, bool]:
    """query id → whether the run's answer to it was right (strict rule)."""
    return dict(EvalResult.objects.filter(eval_run=eval_run).values_list("query_id", "valid"))


def eval_results_paired(*, before: EvalRun, after: EvalRun) -> list[tuple[EvalResult, EvalResult]]:
    """(before, after) results of the queries both runs answered, in query order."""
    earlier = {r.query_id: r for r in EvalResult.objects.filter(eval_run=before).defer("output", "detail")}
    return [
        (earlier[r.query_id], r)
        for r in EvalResult.objects.filter(eval_run=after).defer("output", "detail").order_by("query_id")
        if r.query_id in earlier
    ]


def eval_result_list(
    *, eval_run: EvalRun, kind: str | None = None, deficiency: str | None = None, failed_only: bool = False
) -> QuerySet[EvalResult]:
    """A run's results filtered by kind and deficiency ("" or "none" = right answers), in id order (keyset
    paging on id: `.filter(id__gt=last)`)."""
    rows = EvalResult.objects.filter(eval_run=eval_run)
    if kind:
        rows = rows.filter(kind=kind)
    if deficiency is not None:
        rows = rows.filter(deficiency="" if deficiency == "none" else deficiency)
    if failed_only:
        rows = rows.filter(valid=False)
    return rows.order_by("id")
