"""The select stage: score the searchable train queries under the round's policy; keep the weakest."""

from __future__ import annotations

from django.db import transaction

from workers.select import SelectionConfig, candidate_indices, choose, pass_rates, perplexities

from ..models import RoundQuery
from ..policy import policy_backend, policy_tokenizer, query_prompt, query_tools
from ..services import round_progress, round_transition
from .base import Progress, S, StageError, checked, searchable_queries, stage_round


def round_select(*, round_id: int, progress: Progress | None = None, check=None) -> dict:
    """Score the searchable train queries (all, or `candidates` of them) under the round's policy; mark the
    weakest as selected."""
    progress = checked(progress, check)
    rnd = stage_round(round_id)
    if rnd.state == S.DRAFT:
        round_transition(round_id=round_id, to=S.SELECTING)
    config = SelectionConfig(**rnd.selection)
    queries = searchable_queries(rnd.project)
    if config.method == "perplexity":
        queries = [q for q in queries if q.reference_output]
    if not queries:
        raise StageError("no train query with a ground truth (and a reference answer) to select from")
    queries = [queries[i] for i in candidate_indices(len(queries), config)]
    tokenizer = policy_tokenizer(rnd.policy_in)
    prompts = [query_prompt(tokenizer, q) for q in queries]
    report = (lambda p: progress({"stage": "select", **p})) if progress else None
    backend = policy_backend(rnd.policy_in)  # its engine lives until close(): opened right before the try
    try:
        if config.method == "perplexity":
            scores = perplexities(backend, prompts, [q.reference_output for q in queries], config.batch_size, report)
        else:
            from rewards.checker import Checker

            # strict: a broken call attempt on a no-call query is a failure, not a right "no call"
            checkers = [Checker(q.ground_truth, query_tools(q), rule="strict") for q in queries]
            scores = pass_rates(backend, prompts, checkers, config, report)
    finally:
        backend.close()
    chosen = choose(scores, config)
    with transaction.atomic():
        RoundQuery.objects.filter(round=rnd).delete()
        RoundQuery.objects.bulk_create(
            [RoundQuery(round=rnd, query=q, score=s, selected=c) for q, s, c in zip(queries, scores, chosen)],
            batch_size=2000,
        )
    summary = {
        "stage": "select",
        "scored": len(queries),
        "selected": sum(chosen),
        "method": config.method,
        "reason": None if any(chosen) else selection_empty_reason(scores, config),
    }
    round_progress(round_id=round_id, **summary)
    return summary


def selection_empty_reason(scores: list[float], config: SelectionConfig) -> str:
    """Why a selection kept no query, and what to change."""
    if config.method != "pass_rate":
        return f"none of the {len(scores)} queries scored"
    never = sum(score < config.min_rate for score in scores)
    always = sum(score >= config.threshold for score in scores)
    window = f"pass rate in [{config.min_rate:.1%}, {config.threshold:.1%}) over {config.k} samples"
    advice = (
        "the policy solves none of them: warm it up longer (round 0) or lower selection min_rate"
        if never >= always
        else "the policy solves them all: raise selection threshold or k, or add harder queries"
    )
    return f"none of the {len(scores)} scored queries has a {window} ({never} below, {always} at or above): {advice}"
