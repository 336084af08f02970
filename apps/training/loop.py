"""A round's stages in order — select → search → pair — each reading rows, calling an engine, writing results.

The CLI (`run_round`) calls them in-process with progress bars; Celery tasks call the same functions
(search sharded over `gpu` workers), then hand over to the next stage (`lifecycle.stage_finished`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from django.db import transaction

from apps.catalog.models import Query
from apps.curation.models import PreferencePair
from apps.curation.services import pairs_create_from_tree
from apps.search.models import SearchTree
from apps.search.services import step_row, tree_fail, tree_rows, trees_create, trees_steps_save
from workers.mcts import MCTSConfig, PairConfig, Tree, dedupe, extract_pairs, leaf_scorer, run_search
from workers.select import SelectionConfig, candidate_indices, choose, pass_rates, perplexities

from .models import RoundQuery, TrainingRound
from .policy import policy_backend, policy_tokenizer, query_prompt, query_tools
from .services import round_progress, round_transition

Progress = Callable[[dict], None]
S = TrainingRound.State


class StageError(RuntimeError):
    """A stage that cannot run: the message says why (no policy, nothing selected, ...)."""


def _round(round_id: int) -> TrainingRound:
    rnd = TrainingRound.objects.select_related("project", "policy_in").get(pk=round_id)
    if rnd.policy_in is None:
        raise StageError(f"round {rnd.number} has no policy checkpoint: build or train one first")
    return rnd


def _searchable(project) -> list[Query]:
    """Train queries a checker can score (a known ground truth), with their tools loaded."""
    return list(
        Query.objects.filter(project=project, split=Query.Split.TRAIN, ground_truth__isnull=False)
        .prefetch_related("query_tools__tool")
        .order_by("id")
    )


# --- select ------------------------------------------------------------------------------------


def round_select(*, round_id: int, progress: Progress | None = None) -> dict:
    """Score the searchable train queries (all, or `candidates` of them) under the round's policy; mark the
    weakest as selected."""
    rnd = _round(round_id)
    if rnd.state == S.DRAFT:
        round_transition(round_id=round_id, to=S.SELECTING)
    config = SelectionConfig(**rnd.selection)
    queries = _searchable(rnd.project)
    if config.method == "perplexity":
        queries = [q for q in queries if q.reference_output]
    if not queries:
        raise StageError("no train query with a ground truth (and a reference answer) to select from")
    queries = [queries[i] for i in candidate_indices(len(queries), config)]
    backend = policy_backend(rnd.policy_in)
    tokenizer = policy_tokenizer(rnd.policy_in)
    prompts = [query_prompt(tokenizer, q) for q in queries]
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress({"stage": "select", "done": done[0], "total": len(queries)})

    try:
        if config.method == "perplexity":
            scores = perplexities(backend, prompts, [q.reference_output for q in queries], config.batch_size, tick)
        else:
            from apps.rewards.checker import Checker

            # strict: a broken call attempt on a no-call query is a failure, not a right "no call"
            checkers = [Checker(q.ground_truth, query_tools(q), rule="strict") for q in queries]
            scores = pass_rates(backend, prompts, checkers, config, tick)
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


# --- search ------------------------------------------------------------------------------------


def search_config(rnd: TrainingRound) -> MCTSConfig:
    return MCTSConfig.from_dict(rnd.search_config) if rnd.search_config else MCTSConfig()


def round_search_prepare(*, round_id: int) -> list[int]:
    """Enter the search state and create one tree per selected query; returns the ids of unfinished trees."""
    rnd = _round(round_id)
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
    rnd = _round(round_id)
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
        trees_steps_save(steps=[step_row(step) for step in steps])
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

    backend = policy_backend(rnd.policy_in)
    try:
        run_search(trees, backend, scorers, config, on_step=on_step)
    except Exception as exc:
        for row in rows:
            tree_fail(tree_id=row.pk, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        backend.close()
    return {"trees": len(rows)}


def round_search_dispatch(*, round_id: int, shard_size: int = 64) -> list[str]:
    """Send the round's unfinished trees to `gpu` workers, `shard_size` trees per task (one generate call
    serves a whole shard per step); returns the task ids, also kept on the round for cancelling."""
    from workers.tasks import search_trees_search

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


# --- pair --------------------------------------------------------------------------------------


def round_pair(*, round_id: int, config: PairConfig | None = None, progress: Progress | None = None) -> dict:
    """Turn every finished tree of the round into step-level pairs, then wait for review."""
    rnd = _round(round_id)
    unfinished = SearchTree.objects.filter(round=rnd).exclude(status=SearchTree.Status.DONE).count()
    if unfinished:
        raise StageError(f"round {rnd.number}: {unfinished} search trees are not finished")
    if rnd.state == S.SEARCHING:
        round_transition(round_id=round_id, to=S.PAIRING)
    config = config or PairConfig(**rnd.hyperparameters.get("pairs", {}))
    created = 0
    trees = list(SearchTree.objects.filter(round=rnd).order_by("id"))
    outcomes: Counter = Counter()
    for i, row in enumerate(trees, start=1):
        tree = Tree.from_rows(row.pk, "", tree_rows(tree=row), row.simulations_done)
        candidates = dedupe(extract_pairs(tree, config))
        if not candidates:
            outcomes[tree_without_pairs(tree, config)] += 1
        created += pairs_create_from_tree(tree=row, candidates=candidates)
        if progress:
            progress({"stage": "pair", "done": i, "total": len(trees), "pairs": created})
    round_transition(round_id=round_id, to=S.REVIEWING)
    total = PreferencePair.objects.filter(round=rnd).count()
    summary = {
        "stage": "pair",
        "trees": len(trees),
        "pairs": total,
        "reason": None
        if total
        else no_pairs_reason(outcomes, len(trees), config, SelectionConfig(**rnd.selection).method),
    }
    round_progress(round_id=round_id, **summary)
    return summary


# Why a tree gave no pair (`tree_without_pairs`), most telling first.
NEVER_RIGHT, ALWAYS_RIGHT, ONE_ANSWER, FILTERED = "never right", "always right", "one answer", "filtered"


def tree_without_pairs(tree: Tree, config: PairConfig) -> str:
    """Why a searched tree gave no pair: its rollouts all scored the same (never right / always right), every
    sample gave the same fragments (no node with two children), or its sibling pairs all failed the filter."""
    values = [node.value for node in tree.nodes.values() if node.visits]
    if values and max(values) - min(values) < 1e-9:
        return ALWAYS_RIGHT if min(values) >= 1.0 - 1e-9 else NEVER_RIGHT
    if not any(len(tree.children_of(node)) >= 2 for node in tree.nodes.values()):
        return ONE_ANSWER
    return FILTERED


def no_pairs_reason(outcomes: dict[str, int], trees: int, config: PairConfig, method: str) -> str:
    """One sentence on why a round's search gave no pair (`outcomes`: trees by `tree_without_pairs`), and what to
    try."""
    if not trees:
        return "the round searched no tree"
    outcomes = Counter(outcomes)
    same = {label: outcomes[label] for label in (NEVER_RIGHT, ALWAYS_RIGHT) if outcomes[label]}
    if sum(same.values()) == trees:
        head = f"all {trees} trees' rollouts scored the same ({', '.join(f'{n} {k}' for k, n in same.items())})"
    else:
        parts = [f"{n} scored every rollout the same ({k})" for k, n in same.items()]
        if outcomes[ONE_ANSWER]:
            parts.append(f"{outcomes[ONE_ANSWER]} sampled the same fragments every time (no branch)")
        if outcomes[FILTERED]:
            parts.append(
                f"{outcomes[FILTERED]} had branches of different values, but no sibling pair passed the "
                f"filter (gap ≥ {config.gap_min:g}, chosen value ≥ {config.chosen_value_min:g}, word "
                f"overlap ≤ {config.overlap_max:g})"
            )
        head = f"of {trees} trees, " + "; ".join(parts)
    top = max(outcomes, key=lambda k: (outcomes[k], k))
    if top == NEVER_RIGHT:
        advice = (
            "the policy never solves these queries — try selection pass_rate with min_rate > 0 (queries it "
            "solves sometimes)"
            if method != "pass_rate"
            else "the policy never solves these queries — warm it up longer (round 0) or search wider "
            "(search width, simulations)"
        )
    elif top == ALWAYS_RIGHT:
        advice = "the policy always solves these queries — select harder ones (selection threshold below 1)"
    elif top == ONE_ANSWER:
        advice = "the policy samples one answer — search wider (search width) or sample hotter (search temperature)"
    else:
        advice = "loosen the pair filter (pairs: gap_min, chosen_value_min)"
    return f"{head}: {advice}"


# --- train: warm-up SFT (round 0), preference optimisation on the snapshot, or GRPO online --------------


def _output_dir(rnd: TrainingRound, suffix: str):
    from django.conf import settings

    return settings.CHECKPOINT_DIR / rnd.project.name / f"round-{rnd.number}-{suffix}"


def round_train(*, round_id: int, progress: Progress | None = None, check=None) -> dict:
    """Train the round's policy by its algorithm and register the result as the round's output checkpoint;
    the round moves on to evaluating. `check()` is called with every progress report (it raises to stop a
    cancelled round). Preference rounds resume from their last trainer checkpoint when run again."""
    from .services import checkpoint_register

    rnd = _round(round_id)
    if rnd.state == S.DRAFT:
        round_transition(round_id=round_id, to=S.TRAINING)
    elif rnd.state != S.TRAINING:
        raise StageError(f"round {rnd.number} is {rnd.state}, not training")

    def tick(p: dict) -> None:
        loss = p.get("loss")  # every trainer counts its steps from the start (the warm-up's stages run in one)
        point = (p["step"], loss) if loss is not None and p.get("step") is not None else None
        round_progress(
            round_id=round_id,
            stage="train",
            loss_point=point,
            **{k: v for k, v in p.items() if k in ("step", "max_steps", "loss", "epoch", "bucket", "reward")},
        )
        if check:
            check()
        if progress:
            progress({"stage": "train", **p})

    if rnd.algorithm == TrainingRound.Algorithm.SFT:
        output, kind, config, summary = _train_sft(rnd, tick)
    elif rnd.algorithm == TrainingRound.Algorithm.GRPO:
        output, kind, config, summary = _train_grpo(rnd, tick)
    else:
        output, kind, config, summary = _train_preference(rnd, tick)
    checkpoint = checkpoint_register(
        project=rnd.project,
        name=f"{rnd.project.name}-round{rnd.number}-{rnd.algorithm}",
        path=str(output),
        kind=kind,
        parent=rnd.policy_in,
        round=rnd,
        config={"algorithm": rnd.algorithm, "config": config, **summary},
    )
    round_transition(round_id=round_id, to=S.EVALUATING, policy_out=checkpoint)
    round_progress(round_id=round_id, stage="evaluate", train=summary)
    return {"checkpoint": checkpoint.pk, **summary}


def _train_sft(rnd: TrainingRound, tick):
    from dataclasses import asdict

    from workers.train.sft import WarmupConfig, results_summary, warmup_sft

    config = WarmupConfig(**rnd.hyperparameters.get("warmup", {}))
    tokenizer = policy_tokenizer(rnd.policy_in)
    queries = Query.objects.filter(project=rnd.project, split=Query.Split.TRAIN).exclude(reference_output="")
    examples: dict[str, list[dict]] = {}
    for q in queries.prefetch_related("query_tools__tool").order_by("id"):
        examples.setdefault(q.difficulty_bucket, []).append(
            {"prompt": query_prompt(tokenizer, q), "completion": q.reference_output}
        )
    if not examples:
        raise StageError("no train query with a reference answer to warm up on")
    output = _output_dir(rnd, "sft")
    results = warmup_sft(rnd.policy_in.path, output, examples, config, progress=tick)
    return output, "sft", asdict(config), results_summary(results)


def snapshot_training_rows(snapshot) -> list[dict]:
    """The rows a preference round trains on: the snapshot's trl export rows, so what is exported is what was
    trained (prompt = the policy's chat template + the shared assistant prefix; chosen / rejected fragments;
    a fragment that stops mid-answer is trained without a closing EOS), with the sampled token ids the rows
    carry (docs/token-ids.md): `prompt_ids` = the rendered chat prompt's ids + the prefix's sampled ids,
    `chosen_ids` / `rejected_ids` (None after an edit of that side: training tokenises its text alone)."""
    from apps.datasets.services import snapshot_rows

    rows = []
    for row in snapshot_rows(snapshot, "trl"):
        train = {
            "prompt": row["prompt"],
            "chosen": row["chosen"],
            "rejected": row["rejected"],
            "chosen_ends": row["metadata"]["chosen_ends"],
            "rejected_ends": row["metadata"]["rejected_ends"],
        }
        if row["prompt_ids"] is not None:
            train.update(prompt_ids=row["prompt_ids"], chosen_ids=row["chosen_ids"], rejected_ids=row["rejected_ids"])
        rows.append(train)
    return rows


def _train_preference(rnd: TrainingRound, tick):
    from dataclasses import asdict

    from workers.train.preference import config_for, train_preference

    if rnd.snapshot_id is None:
        raise StageError(f"round {rnd.number} has no dataset snapshot: launch it (the launch freezes one)")
    config = config_for(rnd.algorithm, rnd.hyperparameters.get("train", {}))
    rows = snapshot_training_rows(rnd.snapshot)
    output = _output_dir(rnd, rnd.algorithm)
    scratch = _output_dir(rnd, f"trainer-state-{rnd.pk}")  # the row's id: a re-made project never resumes it
    resume = scratch.exists() and any(scratch.glob("checkpoint-*"))
    result = train_preference(
        rnd.policy_in.path, output, rows, config, progress=tick, checkpoint_dir=scratch, resume=resume
    )
    summary = {k: v for k, v in asdict(result).items() if k != "losses"}
    summary["resumed"] = resume
    return output, "preference", asdict(config), summary


def _train_grpo(rnd: TrainingRound, tick):
    from dataclasses import asdict

    from workers.train.grpo import GRPOParams, train_grpo

    config = GRPOParams(**rnd.hyperparameters.get("train", {}))
    ids = RoundQuery.objects.filter(round=rnd, selected=True).values_list("query_id", flat=True)
    queries = list(Query.objects.filter(pk__in=list(ids)).prefetch_related("query_tools__tool").order_by("id"))
    if not queries:
        raise StageError(f"round {rnd.number} has no selected queries to train on: run the select stage first")
    tokenizer = policy_tokenizer(rnd.policy_in)
    prompts = [query_prompt(tokenizer, q) for q in queries]
    rewards = [_reward_fn(config.reward, q) for q in queries]
    output = _output_dir(rnd, "grpo")
    result = train_grpo(rnd.policy_in.path, output, prompts, rewards, config, progress=tick)
    summary = {k: v for k, v in asdict(result).items() if k not in ("losses", "rewards")}
    return output, "grpo", asdict(config), summary


def _reward_fn(kind: str, query: Query):
    """The verifiable reward of one query's completion: the checker's graded reward ("checker"), or FTRL's
    Solve-F1 step reward ("solve_f1": the completion's calls run in the sandbox, 2·solved / (calls + 1))."""
    from apps.rewards.checker import Checker
    from apps.rewards.execution import solver_for

    if kind == "solve_f1":
        solver = solver_for(query.ordered_tools(), query.sub_answers)
        if solver is None:
            raise StageError(
                f"query {query.external_id!r}: the solve_f1 reward needs executable tools and the "
                "query's sub-answers; use reward 'checker'"
            )
        return lambda text: float(solver(text).step_reward)
    checker = Checker(query.ground_truth, query_tools(query), rule="strict")  # never pays for a broken call
    return lambda text: float(checker(text).reward)


# --- evaluate ----------------------------------------------------------------------------------------------


def round_evaluate(*, round_id: int, progress: Progress | None = None, check=None) -> dict:
    """Score the round's output on the eval split; the round is done, with before/after figures: strict and
    BFCL-rule pass@1, per kind and kind group, and over-refusal, each change with its 95% paired bootstrap
    interval over the eval queries both policies answered (`metrics["changes"]`)."""
    from workers.evaluation import paired_changes

    from .selectors import eval_results_paired

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

    from .models import EvalRun
    from .selectors import eval_outcomes

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


def round_warmup(*, round_id: int, config=None, progress: Progress | None = None) -> dict:
    """Round 0 in one call (the CLI and the demo): warm-up SFT, then evaluation of the result."""
    if config is not None:  # a WarmupConfig given by the caller is kept on the round, where training reads it
        from dataclasses import asdict

        rnd = TrainingRound.objects.get(pk=round_id)
        rnd.hyperparameters = {**rnd.hyperparameters, "warmup": asdict(config)}
        rnd.save(update_fields=["hyperparameters", "updated_at"])
    try:
        trained = round_train(round_id=round_id, progress=progress)
    except Exception as exc:
        round_transition(round_id=round_id, to=S.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    rnd = TrainingRound.objects.select_related("policy_out").get(pk=round_id)
    run = checkpoint_eval_run(
        checkpoint=rnd.policy_out, round=rnd, progress=progress, limit=rnd.hyperparameters.get("eval_limit")
    )
    round_transition(round_id=round_id, to=S.DONE, metrics={"eval": run.metrics, "eval_run": run.pk})
    return {**trained, "eval": run.metrics}


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

    from apps.rewards.checker import Checker
    from apps.rewards.execution import solver_for
    from workers.evaluation import evaluate

    from .models import EvalResult, EvalRun

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
    backend = policy_backend(checkpoint)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress({"stage": "evaluate", "done": done[0], "total": len(queries)})

    try:
        evaluation = evaluate(
            backend,
            [query_prompt(tokenizer, q) for q in queries],
            [Checker(q.ground_truth, query_tools(q)) for q in queries],
            [q.kind for q in queries],
            progress=tick,
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
