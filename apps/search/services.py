"""Writes to search trees: creating them for a round, and persisting each search step atomically."""

from __future__ import annotations

import functools
import json
import math
import queue
import threading
import time
from collections.abc import Iterable

import orjson
import psycopg
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
    """A search node (workers.mcts.Node) as the row `tree_step_save` stores: a copy of its fields, which are
    TreeNode's (`parent_key` for the parent), taken at once (the search goes on changing its counts)."""
    return node.__dict__.copy()


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
    models do sample; they are kept as U+FFFD. JSON has no NaN or infinity (a model's argument `1e999`
    in a verdict's calls): such a number is kept as null, on both databases."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
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
    transaction with a fixed number of statements whatever the number of trees (PostgreSQL: the trees' lock
    and one statement for the nodes, their counts and the trees; SQLite: one INSERT per depth, one UPDATE of
    the changed nodes, one of the trees). The steps land whole or not at all, so a worker killed mid-step
    resumes from the last whole step; a step older than what its tree has stored (a redelivered task) is
    skipped, and re-inserted keys are ignored."""
    if not steps:
        return
    _check_finite(steps)
    with transaction.atomic():
        stored = _lock_trees([s["tree_id"] for s in steps])
        missing = sorted({s["tree_id"] for s in steps} - set(stored))
        if missing:
            raise SearchTree.DoesNotExist(f"no search tree with id {missing[0]}")
        steps = [s for s in steps if s["simulations_done"] >= stored[s["tree_id"]]]
        if not steps:
            return  # older runs of these steps have nothing to add
        changes = {(s["tree_id"], u["key"]): u for s in steps for u in s["updated_nodes"]}
        trees = [
            {
                "id": s["tree_id"],
                "simulations_done": s["simulations_done"],
                "valid": sum(1 for n in s["new_nodes"] if _valid_leaf(n)),
                "status": SearchTree.Status.DONE if s.get("done") else SearchTree.Status.RUNNING,
                "done": bool(s.get("done")),
            }
            for s in steps
        ]
        new_nodes = [(s["tree_id"], n) for s in steps for n in s["new_nodes"]]
        save = _save_step_postgres if connection.vendor == "postgresql" else _save_step_sqlite
        updated = save(new_nodes, changes, trees)
        if updated != len(changes):  # a change to a node never stored: the step is wrong, store none of it
            known = set(
                TreeNode.objects.filter(
                    tree_id__in={t for t, _ in changes}, key__in={k for _, k in changes}
                ).values_list("tree_id", "key")
            )
            tree_id, key = min(set(changes) - known)
            raise KeyError(f"tree {tree_id} has no node {key!r} to update")


def _check_finite(steps: list[dict]) -> None:
    """Refuse a step carrying a NaN or infinite count or reward (a broken scorer's), naming it, before anything
    is written: JSON has no such numbers, and storing them as null or 0 would hide the fault."""
    for step in steps:
        for where, rows, names in (
            ("node", step["new_nodes"], ("prior", "value_sum", "terminal_reward")),
            ("update of node", step["updated_nodes"], ("value_sum",)),
        ):
            for row in rows:
                for name in names:
                    value = row.get(name)
                    if value is not None and not math.isfinite(value):
                        raise ValueError(f"tree {step['tree_id']}: {where} {row['key']!r} has {name} = {value}")


def _valid_leaf(node: dict) -> bool:
    return bool(node.get("is_terminal") and (node.get("verdict") or {}).get("valid"))


class StepWriter:
    """Stores a search's steps (`trees_steps_save`), in order, on a thread of its own with its own database
    connection, so that the database's work on one step overlaps the search's next (its generation, on a GPU
    worker). `put` takes a step's rows — a snapshot: `step_row` copies the counts the search goes on changing —
    and waits only while `depth` steps are still unstored. Steps that queued up while the writer was busy are
    stored together, in one transaction (`merge_steps`: a node's counts are written once, at their latest), so
    a database slower than the search falls behind by fewer statements, not more. The first error the writer
    meets stops it and is raised by the next `put` or by `close`, which waits for every step put before it to
    be stored.

    Steps land whole, in order, so a worker killed mid-search loses at most the steps not yet stored and
    resumes from the last whole one as before. Inside an open transaction (a caller's `atomic` block) the
    writer's connection could not see the caller's rows: steps are then stored inline, as they are put."""

    def __init__(self, *, depth: int = 3):
        self.threaded = not connection.in_atomic_block
        self.waited = 0.0  # seconds `put` and `close` spent waiting on the writer (or storing, when inline)
        self.busy = 0.0  # seconds spent storing steps
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = None
        if self.threaded:
            self._thread = threading.Thread(target=self._run, name="search-step-writer", daemon=True)
            self._thread.start()

    def put(self, rows: list[dict]) -> None:
        self._raise()
        start = time.perf_counter()
        if self._thread is None:
            self._save(rows)
            self._raise()
        else:
            self._queue.put(rows)
        self.waited += time.perf_counter() - start

    def close(self) -> None:
        """Wait until every step put is stored (or the writer failed); raise the writer's error."""
        if self._thread is not None:
            start = time.perf_counter()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            self.waited += time.perf_counter() - start
        self._raise()

    def __enter__(self) -> StepWriter:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        try:
            self.close()  # also when the search failed: nothing may land after the caller's cleanup
        except Exception:
            if kind is None:
                raise  # else the search's own error is the one to raise

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _save(self, rows: list[dict]) -> None:
        if self.error is not None:
            return  # a step after a failed one must not land
        start = time.perf_counter()
        try:
            trees_steps_save(steps=rows)
        except BaseException as exc:  # raised in the search's thread
            self.error = exc
        finally:
            self.busy += time.perf_counter() - start

    def _run(self) -> None:
        try:
            closing = False
            while not closing:
                rows = self._queue.get()
                if rows is None:
                    break
                while True:  # what else is waiting goes along
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        closing = True
                        break
                    try:
                        rows = merge_steps(rows, more)
                    except Exception as exc:  # a malformed step: stop storing, keep taking steps (none waits)
                        self.error = self.error or exc
                self._save(rows)
        finally:
            connection.close()  # this thread's connection


def merge_steps(earlier: list[dict], later: list[dict]) -> list[dict]:
    """Two consecutive steps (`step_row` dicts) as one: per tree, the new nodes of both (parents first), each
    changed node's latest counts (written into the row of a node the earlier step made), the later step's
    simulations and state. Storing the result leaves the trees as storing both in turn would."""
    merged = {s["tree_id"]: {**s, "new_nodes": list(s["new_nodes"])} for s in earlier}
    for step in later:
        first = merged.get(step["tree_id"])
        if first is None:
            merged[step["tree_id"]] = {**step, "new_nodes": list(step["new_nodes"])}
            continue
        made = {node["key"]: i for i, node in enumerate(first["new_nodes"])}
        counts = {u["key"]: u for u in first["updated_nodes"]}
        for u in step["updated_nodes"]:
            if u["key"] in made:
                i = made[u["key"]]
                first["new_nodes"][i] = {**first["new_nodes"][i], "visits": u["visits"], "value_sum": u["value_sum"]}
            else:
                counts[u["key"]] = u
        first["new_nodes"] += step["new_nodes"]
        first["updated_nodes"] = list(counts.values())
        first["simulations_done"], first["done"] = step["simulations_done"], step.get("done", False)
    return list(merged.values())


def _lock_trees(tree_ids: list[int]) -> dict[int, int]:
    """Lock the trees' rows (in id order, so concurrent steps cannot deadlock): {id: simulations_done}.

    On PostgreSQL the same statement sets the transaction's commit not to wait for the WAL flush (one round
    trip less per step than a SET): a database crash can lose the last steps, which the resumable search
    simply redoes; it cannot lose part of a step."""
    if connection.vendor != "postgresql":  # SQLite's write transaction holds the whole database
        return dict(SearchTree.objects.filter(pk__in=tree_ids).values_list("pk", "simulations_done"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, simulations_done, set_config('synchronous_commit', 'off', true) "
            f"FROM {SearchTree._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [list(tree_ids)],
        )
        return {tree_id: done for tree_id, done, _ in cursor.fetchall()}


def _json(value) -> str:
    """`value` as JSON PostgreSQL accepts, as `storable` makes it: NUL characters kept as U+FFFD (looked for in
    the encoded text, so the common case costs one scan), NaN and infinities as null (orjson's own way)."""
    text = _dumps(value)
    return _dumps(storable(value)) if "\\u0000" in text else text


def _dumps(value) -> str:
    """orjson: a step's nodes encode ten times faster than with the json module, on the thread the search
    shares. What orjson refuses — an integer past 64 bits (an argument a model wrote, which jsonb keeps exactly)
    — goes through the json module."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return json.dumps(storable(value))


_NODE_COLUMNS = """tree int, key text, parent_key text, depth int, ordinal int, fragment text, prior float8,
     visits int, value_sum float8, is_terminal bool, terminal_reward float8, verdict jsonb, token_count int,
     token_ids text"""

_PG_LEVEL = """
{name} AS (
  INSERT INTO search_treenode (tree_id, parent_id, key, depth, ordinal, fragment, prior, visits, value_sum,
                               is_terminal, terminal_reward, verdict, token_count, token_ids)
  SELECT v.tree, coalesce(old.id, {new_parent}), v.key, v.depth, v.ordinal, coalesce(v.fragment, ''),
         coalesce(v.prior, 1.0), coalesce(v.visits, 0), coalesce(v.value_sum, 0.0), coalesce(v.is_terminal, false),
         v.terminal_reward, v.verdict, coalesce(v.token_count, 0), decode(v.token_ids, 'hex')
  FROM nodes v
  LEFT JOIN search_treenode old ON old.tree_id = v.tree AND old.key = v.parent_key
  {new_join}
  WHERE v.depth = {depth}
  ON CONFLICT (tree_id, key) DO NOTHING
  RETURNING tree_id, id, key
)"""

_PG_STEP = """
WITH nodes AS (SELECT * FROM jsonb_to_recordset(%(nodes)s::jsonb) AS v({columns})),
{levels},
inserted AS (SELECT tree_id, count(*) AS n FROM ({returned}) AS r GROUP BY tree_id),
counts AS (
  UPDATE search_treenode n SET visits = u.visits, value_sum = u.value_sum
  FROM jsonb_to_recordset(%(counts)s::jsonb) AS u(tree int, key text, visits int, value_sum float8)
  WHERE n.tree_id = u.tree AND n.key = u.key
  RETURNING 1
),
trees AS (
  UPDATE search_searchtree t
  SET simulations_done = s.simulations_done, node_count = t.node_count + coalesce(i.n, 0),
      valid_leaves = t.valid_leaves + s.valid, status = s.status,
      finished_at = CASE WHEN s.done THEN now() END
  FROM jsonb_to_recordset(%(trees)s::jsonb) AS s(id int, simulations_done int, valid int, status text, done bool)
  LEFT JOIN inserted i ON i.tree_id = s.id
  WHERE t.id = s.id
  RETURNING 1
)
SELECT (SELECT count(*) FROM counts)
"""


@functools.lru_cache(maxsize=64)
def _pg_step_sql(depths: tuple[int, ...]) -> str:
    """The step statement for new nodes at these depths: one INSERT per depth in a chain of CTEs, each
    finding its parents among the stored nodes or the level inserted just before it."""
    levels, returned = [], []
    for depth in depths:
        name = f"level{depth}"
        after = depth - 1 in depths
        levels.append(
            _PG_LEVEL.format(
                name=name,
                depth=depth,
                new_parent="new.id" if after else "NULL::bigint",
                new_join=f"LEFT JOIN level{depth - 1} new ON new.tree_id = v.tree AND new.key = v.parent_key"
                if after
                else "",
            )
        )
        returned.append(f"SELECT tree_id FROM {name}")
    if not levels:
        levels, returned = ["no_level AS (SELECT NULL::int AS tree_id WHERE false)"], ["SELECT tree_id FROM no_level"]
    return _PG_STEP.format(columns=_NODE_COLUMNS, levels=",\n".join(levels), returned=" UNION ALL ".join(returned))


def _save_step_postgres(new_nodes: list[tuple[int, dict]], changes: dict, trees: list[dict]) -> int:
    """The whole step in one statement (nodes, counts and trees sent as JSON documents, parsed by the server
    rather than adapted value by value); returns how many stored nodes' counts were updated.

    The statement goes through a cursor that binds its parameters on the server: Django's own cursors bind
    them on the client, escaping a step's few hundred kilobytes of JSON into the SQL text for the server to
    lex again (9% of the step's time). It runs on Django's connection, in its transaction, but Django's
    query log does not see it."""
    rows = [{**n, "tree": t, "token_ids": _hex_ids(n.get("token_ids"))} for t, n in new_nodes]
    counts = [
        {"tree": tree, "key": key, "visits": u["visits"], "value_sum": u["value_sum"]}
        for (tree, key), u in changes.items()
    ]
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:  # Django's errors
        cursor.execute(
            _pg_step_sql(tuple(sorted({n["depth"] for _, n in new_nodes}))),
            {"nodes": _json(rows), "counts": _json(counts), "trees": _json(trees)},
        )
        return cursor.fetchone()[0]


def _save_step_sqlite(new_nodes: list[tuple[int, dict]], changes: dict, trees: list[dict]) -> int:
    inserted = _insert_nodes_orm([(tree, storable(n)) for tree, n in new_nodes])  # stored as PostgreSQL would
    updated = _update_from_values(
        TreeNode._meta.db_table,
        "visits = v.visits, value_sum = v.value_sum",
        "{t}.tree_id = v.tree AND {t}.key = v.key",
        ("tree", "key", "visits", "value_sum"),
        [(tree_id, key, u["visits"], u["value_sum"]) for (tree_id, key), u in changes.items()],
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())  # finished_at of a done tree (else null)
    _update_from_values(
        SearchTree._meta.db_table,
        "simulations_done = v.simulations_done, node_count = node_count + v.inserted, "
        "valid_leaves = valid_leaves + v.valid, status = v.status, finished_at = v.finished_at",
        "{t}.id = v.id",
        ("id", "simulations_done", "inserted", "valid", "status", "finished_at"),
        [
            (t["id"], t["simulations_done"], inserted.get(t["id"], 0), t["valid"], t["status"], finished)
            for t, finished in ((t, now if t["done"] else None) for t in trees)
        ],
    )
    return updated


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
        fresh, seen = [], set()
        for t, n in level:  # a key stored or listed before is left out, as PostgreSQL's ON CONFLICT DO NOTHING does
            if (t, n["key"]) not in ids and (t, n["key"]) not in seen:
                seen.add((t, n["key"]))
                fresh.append((t, n))
        # Not `ignore_conflicts`: SQLite's INSERT OR IGNORE would also drop a row that breaks a CHECK constraint,
        # silently. The write transaction holds the whole database: no other writer adds a key meanwhile.
        TreeNode.objects.bulk_create(
            [
                TreeNode(
                    tree_id=t, parent_id=ids.get((t, n.get("parent_key"))), **{k: n[k] for k in NODE_FIELDS if k in n}
                )
                for t, n in fresh
            ],
            batch_size=2000,
        )
        made = TreeNode.objects.filter(tree_id__in={t for t, _ in fresh}, key__in={n["key"] for _, n in fresh})
        for t, k, i in made.values_list("tree_id", "key", "id"):
            if (t, k) not in ids:
                ids[(t, k)] = i
                inserted[t] = inserted.get(t, 0) + 1
    return inserted


def _hex_ids(ids: list[int] | None) -> str | None:
    """Token ids as the hex of their stored bytes (the INSERT decodes it into the bytea column)."""
    return None if ids is None else ids_to_bytes(ids).hex()


def tree_fail(*, tree_id: int, error: str) -> None:
    SearchTree.objects.filter(pk=tree_id).update(status=SearchTree.Status.FAILED, error=error[:10_000])
