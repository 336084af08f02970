"""Writes to search trees: creating them for a round, and persisting each search step atomically."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import SearchTree, TreeNode

NODE_FIELDS = ("key", "depth", "ordinal", "fragment", "prior", "visits", "value_sum", "is_terminal",
               "terminal_reward", "verdict", "token_count")


def trees_create(*, round, query_ids: Iterable[int], config: dict) -> int:
    """One pending tree per selected query of `round` (existing ones are kept); returns how many exist."""
    SearchTree.objects.bulk_create(
        [SearchTree(project_id=round.project_id, round=round, query_id=qid, policy=round.policy_in, config=config)
         for qid in query_ids],
        ignore_conflicts=True,
    )
    return SearchTree.objects.filter(round=round).count()


def tree_rows(*, tree: SearchTree) -> list[dict]:
    """The tree's stored nodes as plain rows (`parent_key` instead of ids), for the engine to resume from."""
    rows = TreeNode.objects.filter(tree=tree).values(*NODE_FIELDS, "parent__key").order_by("depth", "ordinal", "id")
    return [{**{k: r[k] for k in NODE_FIELDS}, "parent_key": r["parent__key"]} for r in rows]


def tree_step_save(*, tree_id: int, new_nodes: list[dict], updated_nodes: list[dict], simulations_done: int,
                   done: bool = False) -> None:
    """Store one search step of one tree in a single transaction: new nodes (parents before children),
    the visits and values that changed, and the step count. A step either lands whole or not at all, so
    a worker killed mid-step resumes from the last whole step; re-inserted keys are ignored."""
    with transaction.atomic():
        tree = SearchTree.objects.select_for_update().get(pk=tree_id)
        if simulations_done < tree.simulations_done:
            return  # an older run of this step (a redelivered task) has nothing to add
        wanted = {n["parent_key"] for n in new_nodes if n.get("parent_key")}
        ids = dict(TreeNode.objects.filter(tree=tree, key__in=wanted).values_list("key", "id")) if wanted else {}
        for depth in sorted({n["depth"] for n in new_nodes}):
            level = [n for n in new_nodes if n["depth"] == depth]
            TreeNode.objects.bulk_create(
                [TreeNode(tree=tree, parent_id=ids.get(n.get("parent_key")), **{k: n[k] for k in NODE_FIELDS if k in n})
                 for n in level],
                ignore_conflicts=True,
                batch_size=2000,
            )
            ids.update(TreeNode.objects.filter(tree=tree, key__in=[n["key"] for n in level]).values_list("key", "id"))
        if updated_nodes:
            stored = {n.key: n for n in TreeNode.objects.filter(tree=tree, key__in=[u["key"] for u in updated_nodes])}
            for change in updated_nodes:
                node = stored[change["key"]]
                node.visits, node.value_sum = change["visits"], change["value_sum"]
            TreeNode.objects.bulk_update(stored.values(), ["visits", "value_sum"], batch_size=2000)
        valid = sum(1 for n in new_nodes if n.get("is_terminal") and (n.get("verdict") or {}).get("valid"))
        SearchTree.objects.filter(pk=tree.pk).update(
            simulations_done=simulations_done,
            node_count=TreeNode.objects.filter(tree=tree).count(),
            valid_leaves=F("valid_leaves") + valid,
            status=SearchTree.Status.DONE if done else SearchTree.Status.RUNNING,
            finished_at=timezone.now() if done else None,
        )


def tree_fail(*, tree_id: int, error: str) -> None:
    SearchTree.objects.filter(pk=tree_id).update(status=SearchTree.Status.FAILED, error=error[:10_000])
