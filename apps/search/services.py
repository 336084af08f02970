"""Writes to search trees: creating them for a round, and persisting each search step atomically."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone

from .fields import ids_to_bytes
from .models import SearchTree, TreeNode

NODE_FIELDS = (
    "key",
    "depth",
    "ordinal",
    "fragment",
    "prior",
    "visits",
    "value_sum",
    "is_terminal",
    "terminal_reward",
    "verdict",
    "token_count",
    "token_ids",
)


def node_row(node) -> dict:
    """A search node (workers.mcts.Node) as the row `tree_step_save` stores."""
    return {"parent_key": node.parent_key, **{name: getattr(node, name) for name in NODE_FIELDS}}


def step_row(step) -> dict:
    """A search step of one tree (workers.mcts.TreeStep) as the dict `trees_steps_save` stores."""
    return {
        "tree_id": step.tree_id,
        "new_nodes": [node_row(n) for n in step.new_nodes],
        "updated_nodes": [{"key": c.key, "visits": c.visits, "value_sum": c.value_sum} for c in step.updated_nodes],
        "simulations_done": step.simulations_done,
        "done": step.done,
    }


def trees_create(*, round, query_ids: Iterable[int], config: dict) -> int:
    """One pending tree per selected query of `round` (existing ones are kept); returns how many exist."""
    SearchTree.objects.bulk_create(
        [
            SearchTree(project_id=round.project_id, round=round, query_id=qid, policy=round.policy_in, config=config)
            for qid in query_ids
        ],
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


def tree_step_save(
    *, tree_id: int, new_nodes: list[dict], updated_nodes: list[dict], simulations_done: int, done: bool = False
) -> None:
    """Store one search step of one tree (see `trees_steps_save`)."""
    trees_steps_save(
        steps=[
            {
                "tree_id": tree_id,
                "new_nodes": new_nodes,
                "updated_nodes": updated_nodes,
                "simulations_done": simulations_done,
                "done": done,
            }
        ]
    )


def trees_steps_save(*, steps: list[dict]) -> None:
    """Store one search step of each of several trees — {"tree_id", "new_nodes" (parents before children),
    "updated_nodes" (the visits and values that changed), "simulations_done", "done"} — in a single
    transaction with a fixed number of statements whatever the number of trees (one INSERT per depth, one
    UPDATE of the changed nodes, one of the trees). The steps land whole or not at all, so a worker killed
    mid-step resumes from the last whole step; a step older than what its tree has stored (a redelivered task)
    is skipped, and re-inserted keys are ignored."""
    if not steps:
        return
    with transaction.atomic():
        stored = dict(
            SearchTree.objects.select_for_update()
            .filter(pk__in=[s["tree_id"] for s in steps])
            .order_by("pk")
            .values_list("pk", "simulations_done")
        )
        missing = sorted({s["tree_id"] for s in steps} - set(stored))
        if missing:
            raise SearchTree.DoesNotExist(f"no search tree with id {missing[0]}")
        steps = [s for s in steps if s["simulations_done"] >= stored[s["tree_id"]]]
        if not steps:
            return  # older runs of these steps have nothing to add
        new_nodes = [(s["tree_id"], storable(n)) for s in steps for n in s["new_nodes"]]
        inserted = (
            _insert_nodes_postgres(new_nodes) if connection.vendor == "postgresql" else _insert_nodes_orm(new_nodes)
        )
        changes = {(s["tree_id"], u["key"]): u for s in steps for u in s["updated_nodes"]}
        updated = _update_from_values(
            TreeNode._meta.db_table,
            "visits = v.visits, value_sum = v.value_sum",
            "{t}.tree_id = v.tree AND {t}.key = v.key",
            ("tree", "key", "visits", "value_sum"),
            [(tree_id, key, u["visits"], u["value_sum"]) for (tree_id, key), u in changes.items()],
        )
        if updated != len(changes):  # a change to a node never stored: the step is wrong, store none of it
            known = set(
                TreeNode.objects.filter(
                    tree_id__in={t for t, _ in changes}, key__in={k for _, k in changes}
                ).values_list("tree_id", "key")
            )
            tree_id, key = min(set(changes) - known)
            raise KeyError(f"tree {tree_id} has no node {key!r} to update")
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        _update_from_values(
            SearchTree._meta.db_table,
            "simulations_done = v.simulations_done, node_count = node_count + v.inserted, "
            "valid_leaves = valid_leaves + v.valid, status = v.status, finished_at = "
            + ("CAST(v.finished_at AS timestamptz)" if connection.vendor == "postgresql" else "v.finished_at"),
            "{t}.id = v.id",
            ("id", "simulations_done", "inserted", "valid", "status", "finished_at"),
            [
                (
                    s["tree_id"],
                    s["simulations_done"],
                    inserted.get(s["tree_id"], 0),
                    sum(1 for n in s["new_nodes"] if n.get("is_terminal") and (n.get("verdict") or {}).get("valid")),
                    SearchTree.Status.DONE if s.get("done") else SearchTree.Status.RUNNING,
                    now if s.get("done") else None,
                )
                for s in steps
            ],
        )


def _update_from_values(
    table: str, assignments: str, match: str, columns: tuple[str, ...], rows: list[tuple], chunk: int = 500
) -> int:
    """UPDATE `table` from a VALUES list (one statement per `chunk` rows; PostgreSQL and SQLite ≥ 3.33 alike):
    `assignments` and `match` name the list's columns as v.<column>, `match` the table as {t}. Returns the
    number of rows updated."""
    count = 0
    names = ", ".join(f"column{i + 1} AS {name}" for i, name in enumerate(columns))
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (SELECT {names} FROM (VALUES "
                f"{', '.join([one] * len(part))}) AS x) AS v WHERE {match.format(t=table)}",
                [value for row in part for value in row],
            )
            count += max(cursor.rowcount, 0)
    return count


def _levels(new_nodes: list[tuple[int, dict]]):
    """(tree id, node) pairs by depth, shallowest first: a parent is stored before its children."""
    for depth in sorted({n["depth"] for _, n in new_nodes}):
        yield [(t, n) for t, n in new_nodes if n["depth"] == depth]


def _insert_nodes_orm(new_nodes: list[tuple[int, dict]]) -> dict[int, int]:
    """Insert the nodes level by level; returns {tree id: rows that were new}."""
    inserted: dict[int, int] = {}
    if not new_nodes:
        return inserted
    tree_ids = {t for t, _ in new_nodes}
    keys = {n["key"] for _, n in new_nodes} | {n["parent_key"] for _, n in new_nodes if n.get("parent_key")}
    ids = {
        (t, k): i
        for t, k, i in TreeNode.objects.filter(tree_id__in=tree_ids, key__in=keys).values_list("tree_id", "key", "id")
    }
    for level in _levels(new_nodes):
        fresh = [(t, n) for t, n in level if (t, n["key"]) not in ids]
        TreeNode.objects.bulk_create(
            [
                TreeNode(
                    tree_id=t, parent_id=ids.get((t, n.get("parent_key"))), **{k: n[k] for k in NODE_FIELDS if k in n}
                )
                for t, n in fresh
            ],
            ignore_conflicts=True,
            batch_size=2000,
        )
        made = TreeNode.objects.filter(tree_id__in={t for t, _ in fresh}, key__in={n["key"] for _, n in fresh})
        for t, k, i in made.values_list("tree_id", "key", "id"):
            if (t, k) not in ids:
                ids[(t, k)] = i
                inserted[t] = inserted.get(t, 0) + 1
    return inserted


_PG_INSERT = """
INSERT INTO search_treenode (tree_id, parent_id, key, depth, ordinal, fragment, prior, visits, value_sum,
                             is_terminal, terminal_reward, verdict, token_count, token_ids)
SELECT v.tree, parent.id, v.key, v.depth, v.ordinal, coalesce(v.fragment, ''), coalesce(v.prior, 1.0),
       coalesce(v.visits, 0), coalesce(v.value_sum, 0.0), coalesce(v.is_terminal, false), v.terminal_reward,
       v.verdict, coalesce(v.token_count, 0), decode(v.token_ids, 'hex')
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS v(tree int, key text, parent_key text, depth int, ordinal int, fragment text, prior float8, visits int,
          value_sum float8, is_terminal bool, terminal_reward float8, verdict jsonb, token_count int,
          token_ids text)
LEFT JOIN search_treenode parent ON parent.tree_id = v.tree AND parent.key = v.parent_key
ON CONFLICT (tree_id, key) DO NOTHING
RETURNING tree_id
"""


def _insert_nodes_postgres(new_nodes: list[tuple[int, dict]]) -> dict[int, int]:
    """One INSERT … SELECT per depth from the level (all trees) sent as one JSON document (parsed by the
    server, not adapted value by value), parents joined by tree and key. Returns {tree id: rows that were new}.

    The step's commit does not wait for the WAL flush: a database crash can lose the last steps, which
    the resumable search simply redoes; it cannot lose part of a step."""
    inserted: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        for level in _levels(new_nodes):
            rows = [{**n, "tree": t, "token_ids": _hex_ids(n.get("token_ids"))} for t, n in level]
            cursor.execute(_PG_INSERT, {"rows": json.dumps(rows)})
            for (tree_id,) in cursor.fetchall():
                inserted[tree_id] = inserted.get(tree_id, 0) + 1
    return inserted


def _hex_ids(ids: list[int] | None) -> str | None:
    """Token ids as the hex of their stored bytes (the INSERT decodes it into the bytea column)."""
    return None if ids is None else ids_to_bytes(ids).hex()


def tree_fail(*, tree_id: int, error: str) -> None:
    SearchTree.objects.filter(pk=tree_id).update(status=SearchTree.Status.FAILED, error=error[:10_000])
