"""The search stage: one Monte Carlo tree per selected query, every generate call's steps stored as they are made
(resumable); in shards of trees on `gpu` workers, or all in this process (`round_search`, the CLI)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from apps.search.models import SearchTree
from apps.search.services import StepWriter, step_row, tree_fail, tree_rows, trees_create
from workers.mcts import MCTSConfig, Tree, frozen_heap, leaf_scorer, run_search

from ..models import RoundQuery, TrainingRound
from ..policy import policy_backend, policy_tokenizer, query_prompt, query_tools, search_overlap
from ..services import round_progress, round_transition
from .base import Progress, S, StageError, checked, stage_round


def search_config(rnd: TrainingRound) -> MCTSConfig:
    return MCTSConfig.from_dict(rnd.search_config) if rnd.search_config else MCTSConfig()


def round_search_prepare(*, round_id: int) -> list[int]:
    """Enter the search state and create one tree per selected query; returns the ids of unfinished trees."""
    rnd = stage_round(round_id)
    if rnd.state == S.SELECTING:
        round_transition(round_id=round_id, to=S.SEARCHING)
    selected = RoundQuery.objects.filter(round=rnd, selected=True).values_list("query_id", flat=True)
    if not selected.exists():
        why = rnd.progress.get("reason") if rnd.progress.get("stage") == "select" else None
        raise StageError(f"round {rnd.number} has no selected queries: {why or 'run the select stage first'}")
    trees_create(round=rnd, query_ids=list(selected), config=search_config(rnd).as_dict())
    return list(
        SearchTree.objects.filter(round=rnd)
        .exclude(status=SearchTree.Status.DONE)
        .order_by("id")
        .values_list("id", flat=True)
    )


def trees_search(*, round_id: int, tree_ids: list[int], progress: Progress | None = None) -> dict:
    """Search these trees of the round to completion, every step stored as it is made (resumable)."""
    rnd = stage_round(round_id)
    config = search_config(rnd)
    rows = list(
        SearchTree.objects.filter(pk__in=tree_ids, round=rnd)
        .select_related("query")
        .prefetch_related("query__query_tools__tool")
        .order_by("id")
    )
    tokenizer = policy_tokenizer(rnd.policy_in)
    trees, scorers = [], []
    for row in rows:
        prompt = query_prompt(tokenizer, row.query)
        stored = tree_rows(tree=row)
        trees.append(
            Tree.from_rows(row.pk, prompt, stored, row.simulations_done) if stored else Tree.new(row.pk, prompt)
        )
        scorers.append(leaf_scorer(config, row.query.ground_truth, query_tools(row.query)))

    def on_step(step_index, steps, stats) -> None:  # every tree's step of one generate call, in one transaction
        writer.put([step_row(step) for step in steps])
        if progress:
            progress(
                {
                    "stage": "search",
                    "trees": stats.trees,
                    "trees_done": stats.trees_done,
                    "nodes": stats.nodes,
                    "valid_leaves": stats.valid_leaves,
                    "simulations": stats.simulations,
                }
            )

    overlap = search_overlap()  # a bad setting fails here, before the engine starts
    backend = policy_backend(rnd.policy_in)
    try:
        with StepWriter() as writer, frozen_heap():  # a step is stored while the next one generates
            run_search(
                trees,
                backend,
                scorers,
                config,
                on_step=on_step,
                overlap=overlap and backend.converts_here,  # decodes must not wait behind generate
                overlap_min_samples=settings.SEARCH_OVERLAP_MIN_SAMPLES,
            )
    except Exception as exc:
        for row in rows:
            tree_fail(tree_id=row.pk, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        backend.close()
    return {"trees": len(rows)}


def round_search(*, round_id: int, progress: Progress | None = None, check=None, shard_size: int | None = None) -> dict:
    """The whole search in this process (the CLI's way): the round's unfinished trees, `shard_size` at a time
    (default: settings.SEARCH_SHARD_TREES). Progress counts finished trees over the round (`trees_done` of
    `trees`)."""
    progress = checked(progress, check)
    shard_size = _shard_size(shard_size)
    tree_ids = round_search_prepare(round_id=round_id)
    done = 0
    for base in range(0, len(tree_ids), shard_size):
        shard = tree_ids[base : base + shard_size]

        def tick(p: dict, base: int = base) -> None:
            if progress:
                progress({**p, "trees": len(tree_ids), "trees_done": base + p.get("trees_done", 0)})

        trees_search(round_id=round_id, tree_ids=shard, progress=tick)
        done += len(shard)
    return {"stage": "search", "trees": done}


def round_search_dispatch(*, round_id: int, shard_size: int | None = None) -> list[str]:
    """Send the round's unfinished trees to `gpu` workers, `shard_size` trees per task (default:
    settings.SEARCH_SHARD_TREES; one generate call serves a whole shard per step); returns the task ids, also kept
    on the round for cancelling."""
    from workers.tasks import search_trees_search

    shard_size = _shard_size(shard_size)
    tree_ids = round_search_prepare(round_id=round_id)
    task_ids = [
        search_trees_search.delay(round_id, tree_ids[i : i + shard_size]).id
        for i in range(0, len(tree_ids), shard_size)
    ]
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().get(pk=round_id)
        rnd.task_ids = [*rnd.task_ids, *task_ids]
        rnd.save(update_fields=["task_ids", "updated_at"])
    round_progress(round_id=round_id, stage="search", trees=len(tree_ids), shards=len(task_ids))
    return task_ids


def _shard_size(shard_size: int | None) -> int:
    size = settings.SEARCH_SHARD_TREES if shard_size is None else shard_size
    if not isinstance(size, int) or size < 1:
        raise ImproperlyConfigured(f"SEARCH_SHARD_TREES must be a positive number of trees, got {size!r}")
    return size
