"""The evaluate stage: the round's output scored on the eval split, before → after with paired intervals; and the
scoring of any checkpoint (`checkpoint_eval_run`), which the `evaluate` command and the arms use too."""

from __future__ import annotations

from django.db import transaction

from apps.catalog.models import Query

from ..models import TrainingRound
from ..policy import policy_backend, policy_tokenizer, query_prompt, query_tools
from ..services import round_progress, round_transition
from .base import Progress, S, StageError


def round_evaluate(*, round_id: int, progress: Progress | None = None, check=None) -> dict:
    """Score the round's output on the eval split; the round is done, with before/after figures: strict and
    BFCL-rule pass@1, per kind and kind group, and over-refusal, each change with its 95% paired bootstrap
    interval over the eval queries both policies answered (`metrics["changes"]`). A round whose hyperparameters
    say `"eval_baseline": false` (the warm-up of a from-scratch model: its input answers nothing) scores its
    output only."""
    from workers.evaluation import paired_changes

    from ..selectors import eval_results_paired

    rnd = TrainingRound.objects.select_related("project", "policy_in", "policy_out").get(pk=round_id)
    if rnd.state != S.EVALUATING or rnd.policy_out is None:
        raise StageError(f"round {rnd.number} is {rnd.state} with no trained checkpoint to evaluate")
    limit = rnd.hyperparameters.get("eval_limit")

    def tick(p: dict) -> None:
        round_progress(round_id=round_id, **p)
        if check:
            check()
        if progress:
            progress(p)

    after = checkpoint_eval_run(checkpoint=rnd.policy_out, round=rnd, progress=tick, limit=limit)
    if not rnd.hyperparameters.get("eval_baseline", True):
        metrics = {"eval": after.metrics, "eval_run": after.pk}
        round_transition(round_id=round_id, to=S.DONE, metrics=metrics)
        return metrics
    before = _baseline(rnd, after, limit, tick)
    metrics = {
        "eval": after.metrics,
        "before": before.metrics,
        "eval_run": after.pk,
        "before_run": before.pk,
        "pass_rate_change": after.metrics["pass_rate"] - before.metrics["pass_rate"],
        "changes": paired_changes(eval_results_paired(before=before, after=after)),
    }
    round_transition(round_id=round_id, to=S.DONE, metrics=metrics)
    return metrics


def _baseline(rnd: TrainingRound, after, limit: int | None, tick):
    """The input policy's EvalRun on the same eval queries as `after`: its newest finished run whose stored
    answers cover exactly those queries, or a new one (so every round reports before and after on identical
    queries)."""
    from django.db.models import Count, F

    from ..models import EvalRun
    from ..selectors import eval_outcomes

    queries = set(eval_outcomes(eval_run=after))
    runs = (
        EvalRun.objects.filter(
            checkpoint=rnd.policy_in, status=EvalRun.Status.DONE, split="eval", n_queries=after.n_queries
        )
        .annotate(stored=Count("results"))
        .filter(stored=F("n_queries"))
        .order_by("-created_at")
    )
    for run in runs[:5]:
        if set(eval_outcomes(eval_run=run)) == queries:
            return run
    return checkpoint_eval_run(checkpoint=rnd.policy_in, progress=tick, limit=limit)


def checkpoint_evaluate(
    *, checkpoint, round=None, progress: Progress | None = None, limit: int | None = None, source: str | None = None
) -> dict:
    """The metrics of `checkpoint_eval_run` (same arguments)."""
    return checkpoint_eval_run(
        checkpoint=checkpoint, round=round, progress=progress, limit=limit, source=source
    ).metrics


def _eval_sources(project) -> list[str]:
    eval_split = Query.objects.filter(project=project, split=Query.Split.EVAL)
    return sorted(set(eval_split.values_list("source", flat=True)))


def checkpoint_eval_run(
    *, checkpoint, round=None, progress: Progress | None = None, limit: int | None = None, source: str | None = None
):
    """Score a checkpoint on the project's eval split (greedy, checker-verified by the strict and BFCL rules;
    Solve-F1 where the tools are executable; pass rate per BFCL category for imported BFCL queries), or on its
    eval queries from one `source` (e.g. "bfcl"); stored as an EvalRun (its metrics) with one EvalResult per
    query (output and verdicts), which is returned."""
    from django.utils import timezone

    from rewards.checker import Checker
    from rewards.execution import solver_for
    from workers.evaluation import evaluate

    from ..models import EvalResult, EvalRun

    eval_queries = Query.objects.filter(project=checkpoint.project, split=Query.Split.EVAL, ground_truth__isnull=False)
    if source is not None:
        eval_queries = eval_queries.filter(source=source)
    queries = list(eval_queries.prefetch_related("query_tools__tool").order_by("id")[:limit])
    if source is not None and not queries:
        raise StageError(
            f"project {checkpoint.project.name!r} has no eval query with a ground truth from source "
            f"{source!r} (sources: {', '.join(_eval_sources(checkpoint.project)) or 'none'})"
        )
    run = EvalRun.objects.create(
        project=checkpoint.project,
        checkpoint=checkpoint,
        round=round,
        status=EvalRun.Status.RUNNING,
        n_queries=len(queries),
        split="eval" if source is None else f"eval:{source}"[:32],
    )
    tokenizer = policy_tokenizer(checkpoint)
    backend = policy_backend(checkpoint)  # its engine lives until close(): opened right before the try
    try:
        evaluation = evaluate(
            backend,
            [query_prompt(tokenizer, q) for q in queries],
            [Checker(q.ground_truth, query_tools(q)) for q in queries],
            [q.kind for q in queries],
            progress=(lambda p: progress({"stage": "evaluate", **p})) if progress else None,
            solvers=[solver_for(q.ordered_tools(), q.sub_answers) for q in queries],
            categories=[(q.metadata or {}).get("bfcl_category") for q in queries],
        )
    except Exception as exc:
        EvalRun.objects.filter(pk=run.pk).update(status=EvalRun.Status.FAILED, error=str(exc)[:10_000])
        raise
    finally:
        backend.close()
    with transaction.atomic():
        EvalResult.objects.bulk_create(
            [
                EvalResult(
                    eval_run=run,
                    query=queries[r.index],
                    kind=r.kind,
                    output=_storable(r.output),
                    valid=r.valid,
                    valid_bfcl=r.valid_bfcl,
                    deficiency=r.deficiency,
                    detail=_storable(r.detail),
                    reward=r.reward,
                    expects_call=r.expects_call,
                )
                for r in evaluation.records
            ],
            batch_size=1000,
        )
        EvalRun.objects.filter(pk=run.pk).update(
            status=EvalRun.Status.DONE, metrics=evaluation.metrics, finished_at=timezone.now()
        )
    run.refresh_from_db()
    return run


def _storable(text: str) -> str:
    """Model text as a database column takes it (PostgreSQL refuses NUL characters in text)."""
    return text.replace("\x00", "\ufffd")
