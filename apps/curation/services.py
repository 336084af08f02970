"""Writes to preference pairs: creating them from search trees (review actions come with the review pages)."""
from __future__ import annotations

import hashlib

from django.db import transaction

from apps.search.models import SearchTree, TreeNode

from .models import PreferencePair


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
