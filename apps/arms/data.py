"""Each arm's training data, built from one round's rows: its snapshot, its pairs as extracted, its search trees'
complete rollouts, its selected queries.

Two layers: `*_items` read the database and return what an arm trains on without prompts (cheap: the launch
checks every arm has data before it writes anything), `arm_data` renders them with the input policy's chat
template into the rows the engines take — `{"prompt", "chosen", "rejected", "chosen_ends", "rejected_ends"}` for
preference arms (as `apps.training.stages.train.snapshot_training_rows`), `{"prompt", "completion"}` for SFT arms, and
queries for GRPO. The selection rules themselves (`whole_response_pair`, `correct_rollouts`, `original_sides`)
are plain functions of plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from apps.catalog.models import Query
from apps.curation.models import PreferencePair, ReviewEvent
from apps.search.models import SearchTree
from apps.search.services import tree_rows
from apps.training.models import RoundQuery, TrainingRound

PREFERENCE_ARMS = ("step_pairs", "unreviewed", "whole_pairs")
SFT_ARMS = ("rft", "sft")
TRAINED_ARMS = (*PREFERENCE_ARMS, *SFT_ARMS, "grpo")  # in the order tables list them
INPUT = "input"  # the round's input policy, untrained: the baseline every arm is compared with


class ArmDataError(ValueError):
    """An arm that has nothing to train on; the message names the arm, the round and what is missing."""


# --- selection rules (plain values in, plain values out) -----------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """A complete response the search sampled: the text from the root to a terminal leaf, and its checker score."""

    query_id: int
    key: str  # the terminal node's key (stable order for ties)
    text: str
    reward: float
    valid: bool


def whole_response_pair(rollouts: Sequence[Rollout]) -> tuple[Rollout, Rollout] | None:
    """Rejection-sampling DPO's pair for one query: its best complete rollout against its worst, by terminal
    reward (ties: the lower key). None when every rollout scores the same or the two texts are equal."""
    if len(rollouts) < 2:
        return None
    ordered = sorted(rollouts, key=lambda r: r.key)
    best = max(ordered, key=lambda r: r.reward)  # max/min keep the first of equals
    worst = min(ordered, key=lambda r: r.reward)
    if best.reward == worst.reward or best.text == worst.text:
        return None
    return best, worst


def correct_rollouts(rollouts: Iterable[Rollout]) -> list[Rollout]:
    """RFT's set: rollouts with a valid verdict, one per (query, text), in the order given."""
    seen, kept = set(), []
    for rollout in rollouts:
        if rollout.valid and (rollout.query_id, rollout.text) not in seen:
            seen.add((rollout.query_id, rollout.text))
            kept.append(rollout)
    return kept


def original_sides(chosen: str, rejected: str, befores: Iterable[dict]) -> tuple[str, str]:
    """A pair's chosen and rejected texts as extracted, from its current texts and its review events' `before`
    fields in order: the first event that changed a side (edit, swap, undo) holds that side's original."""
    original = {"chosen": None, "rejected": None}
    for before in befores:
        for side in original:
            if original[side] is None and side in before:
                original[side] = before[side]
    return (
        original["chosen"] if original["chosen"] is not None else chosen,
        original["rejected"] if original["rejected"] is not None else rejected,
    )


# --- items: what each arm trains on, read from the round (no prompts yet) ------------------------------------


@dataclass(frozen=True)
class PairItem:
    query_id: int
    prefix: str
    chosen: str
    rejected: str
    chosen_ends: bool
    rejected_ends: bool


def round_rollouts(rnd: TrainingRound) -> list[Rollout]:
    """Every complete rollout of the round's finished search trees (terminal leaves, by key), tree by tree."""
    rollouts = []
    for tree_row in SearchTree.objects.filter(round=rnd, status=SearchTree.Status.DONE).order_by("id"):
        nodes = {row["key"]: row for row in tree_rows(tree=tree_row)}
        for key in sorted(nodes):
            leaf = nodes[key]
            if leaf["is_terminal"] and leaf["terminal_reward"] is not None:
                rollouts.append(
                    Rollout(
                        tree_row.query_id,
                        key,
                        _path_text(nodes, leaf),
                        leaf["terminal_reward"],
                        bool((leaf["verdict"] or {}).get("valid")),
                    )
                )
    return rollouts


def _path_text(nodes: dict[str, dict], node: dict) -> str:
    """The fragments from the root down to `node`, joined (as `workers.mcts.Tree.path_text`)."""
    fragments = [node["fragment"]]
    while node["parent_key"] is not None:
        node = nodes[node["parent_key"]]
        fragments.append(node["fragment"])
    return "".join(reversed(fragments))


def unreviewed_items(rnd: TrainingRound) -> list[PairItem]:
    """All of the round's pairs, whatever their review status, with the texts they had when extracted. A side
    ends the answer when its tree node is terminal (no node: a whole answer, as snapshots say)."""
    befores: dict[int, list[dict]] = {}
    for pair_id, before in (
        ReviewEvent.objects.filter(pair__round=rnd).order_by("created_at", "pk").values_list("pair_id", "before")
    ):
        befores.setdefault(pair_id, []).append(before or {})
    items = []
    for values in (
        PreferencePair.objects.filter(round=rnd)
        .order_by("query_id", "id")
        .values(
            "id",
            "query_id",
            "prefix",
            "chosen",
            "rejected",
            "chosen_node__fragment",
            "chosen_node__is_terminal",
            "rejected_node__fragment",
            "rejected_node__is_terminal",
        )
    ):
        chosen, rejected = original_sides(values["chosen"], values["rejected"], befores.get(values["id"], ()))
        ends = {
            values["chosen_node__fragment"]: values["chosen_node__is_terminal"],
            values["rejected_node__fragment"]: values["rejected_node__is_terminal"],
        }  # swaps move the nodes
        if chosen == rejected:
            continue
        items.append(
            PairItem(
                values["query_id"],
                values["prefix"],
                chosen,
                rejected,
                ends.get(chosen) is not False,
                ends.get(rejected) is not False,
            )
        )
    return items


def whole_pair_items(rnd: TrainingRound, rollouts: list[Rollout] | None = None) -> list[PairItem]:
    by_query: dict[int, list[Rollout]] = {}
    for rollout in round_rollouts(rnd) if rollouts is None else rollouts:
        by_query.setdefault(rollout.query_id, []).append(rollout)
    items = []
    for query_id in sorted(by_query):
        pair = whole_response_pair(by_query[query_id])
        if pair is not None:
            items.append(PairItem(query_id, "", pair[0].text, pair[1].text, True, True))
    return items


def selected_queries(rnd: TrainingRound) -> list[Query]:
    ids = RoundQuery.objects.filter(round=rnd, selected=True).values_list("query_id", flat=True)
    return list(Query.objects.filter(pk__in=list(ids)).prefetch_related("query_tools__tool").order_by("id"))


def arm_size(rnd: TrainingRound, arm: str) -> int:
    """How many examples (pairs, completions or prompts) the arm has; 0 means it cannot run. Raises
    ArmDataError with the reason when it has none."""
    if arm == INPUT:
        return 0
    if arm == "step_pairs":
        if rnd.snapshot_id is None:
            raise ArmDataError(
                f"arm 'step_pairs' has no data: round {rnd.number} has no dataset snapshot "
                "(launch its training first: the launch freezes the reviewed pairs)"
            )
        size = rnd.snapshot.pair_count
    elif arm == "unreviewed":
        size = len(unreviewed_items(rnd))
    elif arm == "whole_pairs":
        size = len(whole_pair_items(rnd))
    elif arm == "rft":
        size = len(correct_rollouts(round_rollouts(rnd)))
    elif arm == "sft":
        size = sum(1 for q in selected_queries(rnd) if q.reference_output)
    elif arm == "grpo":
        size = sum(1 for q in selected_queries(rnd) if q.ground_truth is not None)
    else:
        raise ArmDataError(f"unknown arm {arm!r}")
    if size == 0:
        raise ArmDataError(f"arm {arm!r} has no data: round {rnd.number} has {_missing(arm)}")
    return size


def _missing(arm: str) -> str:
    return {
        "step_pairs": "an empty snapshot",
        "unreviewed": "no pairs (run its search and pair stages first)",
        "whole_pairs": "no query whose complete rollouts score differently (no best-vs-worst pair)",
        "rft": "no correct complete rollout (no terminal leaf with a valid verdict)",
        "sft": "no selected query with a reference answer",
        "grpo": "no selected query with a ground truth",
    }[arm]


# --- rendering: items → the rows the engines train on --------------------------------------------------------


def _prompts(tokenizer, query_ids: Iterable[int]) -> dict[int, str]:
    from apps.training.policy import query_prompt

    queries = Query.objects.filter(pk__in=set(query_ids)).prefetch_related("query_tools__tool")
    return {q.pk: query_prompt(tokenizer, q) for q in queries}


def _pair_rows(tokenizer, items: list[PairItem]) -> list[dict]:
    prompts = _prompts(tokenizer, (item.query_id for item in items))
    return [
        {
            "prompt": prompts[i.query_id] + i.prefix,
            "chosen": i.chosen,
            "rejected": i.rejected,
            "chosen_ends": i.chosen_ends,
            "rejected_ends": i.rejected_ends,
        }
        for i in items
    ]


def arm_data(rnd: TrainingRound, arm: str, tokenizer) -> list:
    """The arm's training examples, rendered with `tokenizer` (the input policy's): preference rows, SFT
    `{"prompt", "completion"}` examples, or, for grpo, the selected queries (with a ground truth)."""
    from apps.training.stages.train import snapshot_training_rows

    arm_size(rnd, arm)  # raises ArmDataError when the arm has nothing
    if arm == "step_pairs":
        return snapshot_training_rows(rnd.snapshot)
    if arm == "unreviewed":
        return _pair_rows(tokenizer, unreviewed_items(rnd))
    if arm == "whole_pairs":
        return _pair_rows(tokenizer, whole_pair_items(rnd))
    if arm == "rft":
        kept = correct_rollouts(round_rollouts(rnd))
        prompts = _prompts(tokenizer, (r.query_id for r in kept))
        return [{"prompt": prompts[r.query_id], "completion": r.text} for r in kept]
    queries = selected_queries(rnd)
    if arm == "sft":
        prompts = _prompts(tokenizer, (q.pk for q in queries))
        return [{"prompt": prompts[q.pk], "completion": q.reference_output} for q in queries if q.reference_output]
    return [q for q in queries if q.ground_truth is not None]
