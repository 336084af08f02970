"""The pair stage: every finished tree's step-level pairs, then the round waits for review; or why there are none."""

from __future__ import annotations

from collections import Counter

from apps.curation.models import PreferencePair
from apps.curation.services import pairs_create_from_tree
from apps.search.models import SearchTree
from apps.search.services import tree_rows
from workers.mcts import PairConfig, Tree, dedupe, extract_pairs
from workers.select import SelectionConfig

from ..services import round_progress, round_transition
from .base import Progress, S, StageError, checked, stage_round


def round_pair(
    *, round_id: int, config: PairConfig | None = None, progress: Progress | None = None, check=None
) -> dict:
    """Turn every finished tree of the round into step-level pairs, then wait for review."""
    progress = checked(progress, check)
    rnd = stage_round(round_id)
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
