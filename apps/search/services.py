"""Writes to search trees: creating them for a round, and persisting each search step atomically."""
from __future__ import annotations

import json
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .fields import ids_to_bytes
from .models import SearchTree, TreeNode

NODE_FIELDS = ("key", "depth", "ordinal", "fragment", "prior", "visits", "value_sum", "is_terminal",
               "terminal_reward", "verdict", "token_count", "token_ids")


def node_row(node) -> dict:
    """A search node (workers.mcts.Node) as the row `tree_step_save` stores."""
    return {"parent_key": node.parent_key, **{name: getattr(node, name) for name in NODE_FIELDS}}


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


def storable(value):
    """A value PostgreSQL can store: text columns and jsonb refuse NUL characters, which byte-level
    models do sample; they are kept as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def tree_step_save(*, tree_id: int, new_nodes: list[dict], updated_nodes: list[dict], simulations_done: int,
                   done: bool = False) -> None:
    """Store one search step of one tree in a single transaction: new nodes (parents before children),
    the visits and values that changed, and the step count. A step either lands whole or not at all, so
    a worker killed mid-step resumes from the last whole step; re-inserted keys are ignored."""
    new_nodes = [storable(n) for n in new_nodes]
    with transaction.atomic():
        tree = SearchTree.objects.select_for_update().get(pk=tree_id)
        if simulations_done < tree.simulations_done:
            return  # an older run of this step (a redelivered task) has nothing to add
        if connection.vendor == "postgresql":
            inserted = _insert_nodes_postgres(tree.pk, new_nodes)
        else:
            inserted = _insert_nodes_orm(tree, new_nodes)
        if updated_nodes:
            stored = {n.key: n for n in TreeNode.objects.filter(tree=tree, key__in=[u["key"] for u in updated_nodes])}
            for change in updated_nodes:
                node = stored[change["key"]]
                node.visits, node.value_sum = change["visits"], change["value_sum"]
            TreeNode.objects.bulk_update(stored.values(), ["visits", "value_sum"], batch_size=2000)
        valid = sum(1 for n in new_nodes if n.get("is_terminal") and (n.get("verdict") or {}).get("valid"))
        SearchTree.objects.filter(pk=tree.pk).update(
            simulations_done=simulations_done,
            node_count=F("node_count") + inserted,
            valid_leaves=F("valid_leaves") + valid,
            status=SearchTree.Status.DONE if done else SearchTree.Status.RUNNING,
            finished_at=timezone.now() if done else None,
        )


def _levels(new_nodes: list[dict]):
    """New nodes by depth, shallowest first: a parent is stored before its children."""
    for depth in sorted({n["depth"] for n in new_nodes}):
        yield [n for n in new_nodes if n["depth"] == depth]


def _insert_nodes_orm(tree: SearchTree, new_nodes: list[dict]) -> int:
    before = TreeNode.objects.filter(tree=tree).count()
    wanted = {n["parent_key"] for n in new_nodes if n.get("parent_key")}
    ids = dict(TreeNode.objects.filter(tree=tree, key__in=wanted).values_list("key", "id")) if wanted else {}
    for level in _levels(new_nodes):
        TreeNode.objects.bulk_create(
            [TreeNode(tree=tree, parent_id=ids.get(n.get("parent_key")), **{k: n[k] for k in NODE_FIELDS if k in n})
             for n in level],
            ignore_conflicts=True,
            batch_size=2000,
        )
        ids.update(TreeNode.objects.filter(tree=tree, key__in=[n["key"] for n in level]).values_list("key", "id"))
    return TreeNode.objects.filter(tree=tree).count() - before


_PG_INSERT = """
INSERT INTO search_treenode (tree_id, parent_id, key, depth, ordinal, fragment, prior, visits, value_sum,
                             is_terminal, terminal_reward, verdict, token_count, token_ids)
SELECT %(tree)s, parent.id, v.key, v.depth, v.ordinal, coalesce(v.fragment, ''), coalesce(v.prior, 1.0),
       coalesce(v.visits, 0), coalesce(v.value_sum, 0.0), coalesce(v.is_terminal, false), v.terminal_reward,
       v.verdict, coalesce(v.token_count, 0), decode(v.token_ids, 'hex')
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS v(key text, parent_key text, depth int, ordinal int, fragment text, prior float8, visits int,
          value_sum float8, is_terminal bool, terminal_reward float8, verdict jsonb, token_count int,
          token_ids text)
LEFT JOIN search_treenode parent ON parent.tree_id = %(tree)s AND parent.key = v.parent_key
ON CONFLICT (tree_id, key) DO NOTHING
"""


def _insert_nodes_postgres(tree_id: int, new_nodes: list[dict]) -> int:
    """One INSERT … SELECT per depth from the level sent as one JSON document (parsed by the server,
    not adapted value by value), parents joined by key. Returns how many rows were new.

    The step's commit does not wait for the WAL flush: a database crash can lose the last steps, which
    the resumable search simply redoes; it cannot lose part of a step."""
    inserted = 0
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        for level in _levels(new_nodes):
            rows = [{**n, "token_ids": _hex_ids(n.get("token_ids"))} for n in level]
            cursor.execute(_PG_INSERT, {"tree": tree_id, "rows": json.dumps(rows)})
            inserted += max(cursor.rowcount, 0)
    return inserted


def _hex_ids(ids: list[int] | None) -> str | None:
    """Token ids as the hex of their stored bytes (the INSERT decodes it into the bytea column)."""
    return None if ids is None else ids_to_bytes(ids).hex()


def tree_fail(*, tree_id: int, error: str) -> None:
    SearchTree.objects.filter(pk=tree_id).update(status=SearchTree.Status.FAILED, error=error[:10_000])
