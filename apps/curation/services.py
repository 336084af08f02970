"""Writes to preference pairs: creating them from search trees, and the review actions on them."""
from __future__ import annotations

import hashlib

from django.db import transaction
from django.utils import timezone

from apps.rewards.checker import check
from apps.search.models import SearchTree, TreeNode

from .models import PreferencePair, ReviewEvent


def pair_dedup_key(*, round_id: int | None, query_id: int, prefix: str, chosen: str, rejected: str) -> str:
    """The same pair (same round and query, same prefix and fragments) found twice is stored once."""
    text = f"{round_id}\x00{query_id}\x00{prefix}\x00{chosen}\x00{rejected}"
    return hashlib.sha256(text.encode()).hexdigest()


@transaction.atomic
def pairs_create_from_tree(*, tree: SearchTree, candidates: list) -> int:
    """Store a tree's pair candidates (workers.mcts.pairs.PairCandidate) as pending pairs; returns the
    number of new pairs (a candidate already stored is merged into it: nothing changes)."""
    keys = {k for c in candidates for k in (c.node_key, c.chosen_key, c.rejected_key)}
    ids = dict(TreeNode.objects.filter(tree=tree, key__in=keys).values_list("key", "id"))
    rows = []
    for c in candidates:
        rows.append(PreferencePair(
            project_id=tree.project_id, round_id=tree.round_id, query_id=tree.query_id, tree=tree,
            node_id=ids.get(c.node_key), chosen_node_id=ids.get(c.chosen_key), rejected_node_id=ids.get(c.rejected_key),
            prefix=c.prefix, chosen=c.chosen, rejected=c.rejected,
            chosen_value=c.chosen_value, rejected_value=c.rejected_value,
            chosen_visits=c.chosen_visits, rejected_visits=c.rejected_visits, gap=c.gap,
            deficiency=c.deficiency or "", chosen_verdict=c.chosen_verdict, rejected_verdict=c.rejected_verdict,
            dedup_key=pair_dedup_key(round_id=tree.round_id, query_id=tree.query_id, prefix=c.prefix, chosen=c.chosen, rejected=c.rejected),
        ))
    before = PreferencePair.objects.filter(tree=tree).count()
    PreferencePair.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return PreferencePair.objects.filter(tree=tree).count() - before


# --- review actions: every write carries the version it read; a stale one changes nothing -------------

REVIEWED_FIELDS = ("status", "chosen", "rejected", "chosen_value", "rejected_value", "chosen_verdict",
                   "rejected_verdict", "flag_note", "original_chosen", "deficiency")


class StaleVersion(Exception):
    """The pair changed since the caller read it; `current` is what it is now (nothing was written)."""

    def __init__(self, pair: PreferencePair, expected: int):
        super().__init__(f"pair #{pair.pk} is at version {pair.version}, not {expected}: someone else changed it")
        self.current, self.expected = pair, expected


def _snapshot(pair: PreferencePair) -> dict:
    return {name: getattr(pair, name) for name in REVIEWED_FIELDS}


def _review(*, pair_id: int, version: int, user, action: str, change, note: str = "") -> PreferencePair:
    """Lock the pair, check the version, apply `change(pair)`, bump the version, record the event."""
    with transaction.atomic():
        pair = PreferencePair.objects.select_for_update().get(pk=pair_id)
        if pair.version != version:
            raise StaleVersion(pair, version)
        before = _snapshot(pair)
        change(pair)
        pair.version += 1
        pair.reviewed_by, pair.reviewed_at = user, timezone.now()
        pair.save()
        after = _snapshot(pair)
        ReviewEvent.objects.create(
            pair=pair, user=user, action=action, version=pair.version, note=note,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
        )
        return pair


def pair_approve(*, pair_id: int, version: int, user) -> PreferencePair:
    return _review(pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.APPROVE,
                   change=lambda p: setattr(p, "status", PreferencePair.Status.APPROVED))


def pair_reject(*, pair_id: int, version: int, user, note: str = "") -> PreferencePair:
    return _review(pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.REJECT, note=note,
                   change=lambda p: setattr(p, "status", PreferencePair.Status.REJECTED))


def pair_flag(*, pair_id: int, version: int, user, note: str) -> PreferencePair:
    if not note.strip():
        raise ValueError("a flag needs a note saying what is wrong")

    def change(p):
        p.status, p.flag_note = PreferencePair.Status.FLAGGED, note.strip()

    return _review(pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.FLAG, note=note,
                   change=change)


def pair_swap(*, pair_id: int, version: int, user) -> PreferencePair:
    """Chosen becomes rejected and the reverse (values, verdicts and nodes too)."""
    def change(p):
        p.chosen, p.rejected = p.rejected, p.chosen
        p.chosen_value, p.rejected_value = p.rejected_value, p.chosen_value
        p.chosen_visits, p.rejected_visits = p.rejected_visits, p.chosen_visits
        p.chosen_verdict, p.rejected_verdict = p.rejected_verdict, p.chosen_verdict
        p.chosen_node_id, p.rejected_node_id = p.rejected_node_id, p.chosen_node_id
        p.gap = p.chosen_value - p.rejected_value
        p.deficiency = (p.rejected_verdict or {}).get("deficiency", "") or ""

    return _review(pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.SWAP, change=change)


def pair_edit(*, pair_id: int, version: int, user, chosen: str) -> PreferencePair:
    """Correct the chosen fragment; the checker re-scores prefix + edit (the verdict is kept on the pair)."""
    if not chosen.strip():
        raise ValueError("the chosen fragment cannot be empty")

    def change(p):
        if not p.original_chosen:
            p.original_chosen = p.chosen
        p.chosen = chosen
        tools = [t.as_openai() for t in p.query.ordered_tools()]
        p.chosen_verdict = (check(p.prefix + chosen, p.query.ground_truth, tools).as_dict()
                            if p.query.ground_truth is not None else None)
        p.status = PreferencePair.Status.EDITED

    return _review(pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.EDIT, change=change)
