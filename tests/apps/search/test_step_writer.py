"""The search's step writer: steps stored on a thread of their own, in order, while the search goes on; the
first failure stops it and reaches the search; inside an open transaction, steps are stored inline."""

import threading
import time
from contextlib import contextmanager

import pytest
from django.db import connection, connections

from apps.catalog.models import Query
from apps.projects.models import Project
from apps.search.models import SearchTree, TreeNode
from apps.search.services import StepWriter, merge_steps, trees_create, trees_steps_save
from apps.training.services import round_create

from .test_services import node


def step(tree_id, new_nodes, simulations_done, updated=(), done=False):
    return {
        "tree_id": tree_id,
        "new_nodes": new_nodes,
        "updated_nodes": list(updated),
        "simulations_done": simulations_done,
        "done": done,
    }


@pytest.fixture
def committed_tree(transactional_db):
    """A tree whose rows are committed (the writer's own connection sees them)."""
    project = Project.objects.create(name="writer")
    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    trees_create(round=round_create(project=project), query_ids=[query.pk], config={})
    return SearchTree.objects.get()


@contextmanager
def tree_held(tree_id):
    """Another connection holds the tree's row (PostgreSQL) or the database's write lock (SQLite) until the
    block ends: a step stored meanwhile has to wait."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            if other.vendor == "postgresql":
                other.set_autocommit(False)
                cursor.execute("SELECT id FROM search_searchtree WHERE id = %s FOR UPDATE", [tree_id])
            else:
                cursor.execute("BEGIN IMMEDIATE")
            yield
            if other.vendor == "postgresql":
                other.commit()
            else:
                cursor.execute("COMMIT")
    finally:
        other.close()


def stored(tree):
    tree.refresh_from_db()
    return tree.simulations_done, sorted(TreeNode.objects.filter(tree=tree).values_list("key", flat=True))


def test_steps_are_stored_on_the_writer_thread_in_order_while_the_search_goes_on(committed_tree):
    tree = committed_tree
    first = step(tree.pk, [node("root", None, 0, 0, "", visits=2), node("a", "root", 1, 0, "x", value=1.0)], 1)
    second = step(
        tree.pk,
        [node("a0", "a", 2, 0, "y)]", value=1.0, terminal=True, valid=True)],
        2,
        updated=[{"key": "root", "visits": 3, "value_sum": 2.0}, {"key": "a", "visits": 2, "value_sum": 2.0}],
        done=True,
    )
    with tree_held(tree.pk):
        writer = StepWriter(depth=1)
        assert writer.threaded
        writer.put([first])  # returns at once: the writer waits for the lock, not the search
        writer.put([second])  # queued behind it
        third = threading.Thread(target=writer.put, args=([],), daemon=True)
        third.start()
        third.join(0.5)
        assert third.is_alive(), "a third step must wait: only `depth` steps may be unstored"
        assert stored(tree) == (0, [])
    writer.close()
    third.join(5)
    assert not third.is_alive()
    assert stored(tree) == (2, ["a", "a0", "root"])
    assert (tree.status, tree.node_count, tree.valid_leaves) == ("done", 3, 1) and tree.finished_at
    assert TreeNode.objects.get(tree=tree, key="root").visits == 3
    assert writer.busy > 0 and writer.waited > 0  # close() waited for the steps held back by the lock
    assert not any(t.name == "search-step-writer" for t in threading.enumerate())  # closed: its thread ended


def test_the_first_failure_stops_the_writer_and_reaches_the_search(committed_tree):
    tree = committed_tree
    writer = StepWriter()
    writer.put([step(tree.pk, [node("root", None, 0, 0, "")], 1)])
    deadline = time.monotonic() + 30
    while stored(tree)[0] != 1 and time.monotonic() < deadline:  # stored on its own, before the bad one comes
        time.sleep(0.01)
    bad = {"key": "nope", "visits": 1, "value_sum": 0}
    writer.put([step(tree.pk, [node("b", "root", 1, 0, "z")], 2, updated=[bad])])
    writer.put([step(tree.pk, [node("c", "root", 1, 1, "w")], 3)])  # after the bad one: must not land
    with pytest.raises(KeyError, match="no node 'nope'"):
        writer.close()
    assert stored(tree) == (1, ["root"])
    with pytest.raises(KeyError):
        writer.put([])  # a failed writer refuses more steps


def test_a_search_that_fails_waits_for_its_writer_and_keeps_its_own_error(committed_tree):
    tree = committed_tree
    with pytest.raises(RuntimeError, match="engine died"):
        with StepWriter() as writer:
            writer.put([step(tree.pk, [node("root", None, 0, 0, "")], 1)])
            raise RuntimeError("engine died")
    assert stored(tree) == (1, ["root"])  # stored before the caller's cleanup could run


def test_inside_a_transaction_steps_are_stored_inline(project):
    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    trees_create(round=round_create(project=project), query_ids=[query.pk], config={})
    tree = SearchTree.objects.get()
    assert connection.in_atomic_block
    writer = StepWriter()
    assert not writer.threaded
    writer.put([step(tree.pk, [node("root", None, 0, 0, "")], 1)])
    assert stored(tree) == (1, ["root"])  # at once, in the caller's transaction
    with pytest.raises(KeyError):
        writer.put([step(tree.pk, [], 2, updated=[{"key": "nope", "visits": 1, "value_sum": 0}])])
    with pytest.raises(KeyError):
        writer.close()  # a failed writer says so again
    assert stored(tree) == (1, ["root"])


def test_a_step_whose_new_nodes_chain_over_several_depths_lands_parents_first(project):
    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    trees_create(round=round_create(project=project), query_ids=[query.pk], config={})
    tree = SearchTree.objects.get()
    chain = [
        node("root", None, 0, 0, ""),
        node("a", "root", 1, 0, "[f("),
        node("b", "a", 2, 0, "x=1"),
        node("c", "b", 3, 0, ")]", terminal=True, valid=True),
    ]
    trees_steps_save(steps=[step(tree.pk, chain, 1)])
    parents = dict(TreeNode.objects.filter(tree=tree).values_list("key", "parent__key"))
    assert parents == {"root": None, "a": "root", "b": "a", "c": "b"}
    tree.refresh_from_db()
    assert (tree.node_count, tree.valid_leaves, tree.status) == (4, 1, "running")


def three_steps(tree_id):
    """A tree's first three steps: the root and two children; `a` expanded; `a0` expanded (made in step 2)."""
    return [
        step(
            tree_id,
            [
                node("root", None, 0, 0, "", visits=2, value=0.5),
                node("a", "root", 1, 0, "x", value=1.0),
                node("b", "root", 1, 1, "y", value=-0.5),
            ],
            1,
        ),
        step(
            tree_id,
            [node("a0", "a", 2, 0, "p", value=1.0), node("a1", "a", 2, 1, "q)]", value=0.0, terminal=True)],
            2,
            updated=[{"key": "root", "visits": 4, "value_sum": 1.5}, {"key": "a", "visits": 3, "value_sum": 2.0}],
        ),
        step(
            tree_id,
            [node("a00", "a0", 3, 0, ")]", value=1.0, terminal=True, valid=True)],
            3,
            updated=[
                {"key": "root", "visits": 5, "value_sum": 2.5},
                {"key": "a", "visits": 4, "value_sum": 3.0},
                {"key": "a0", "visits": 2, "value_sum": 2.0},
            ],
            done=True,
        ),
    ]


def test_merged_steps_store_what_storing_them_in_turn_does(project):
    queries = [
        Query.objects.create(project=project, external_id=f"q{i}", source="x", messages=[], content_hash=f"c{i}")
        for i in range(3)
    ]
    trees_create(round=round_create(project=project), query_ids=[q.pk for q in queries], config={})
    in_turn, merged, late = SearchTree.objects.order_by("id")
    for s in three_steps(in_turn.pk):
        trees_steps_save(steps=[s])
    one, two, three = three_steps(merged.pk)
    late_first, late_second, _ = three_steps(late.pk)
    # two trees in the same steps, one of them only in the later ones
    trees_steps_save(steps=merge_steps(merge_steps([one], [two, late_first]), [three, late_second]))

    def rows(tree):
        tree.refresh_from_db()
        fields = ("key", "parent__key", "depth", "visits", "value_sum", "is_terminal", "verdict")
        nodes = sorted(TreeNode.objects.filter(tree=tree).values_list(*fields))
        return (tree.simulations_done, tree.node_count, tree.valid_leaves, tree.status), nodes

    assert rows(merged) == rows(in_turn)
    assert rows(in_turn)[0] == (3, 6, 1, "done")
    assert ("a0", "a", 2, 2, 2.0, False, None) in rows(in_turn)[1]  # its counts from the step after it was made
    assert rows(late)[0] == (2, 5, 0, "running")


def test_steps_waiting_together_are_stored_as_one_and_a_malformed_one_stops_the_writer(committed_tree):
    tree = committed_tree
    one, two, three = three_steps(tree.pk)
    with tree_held(tree.pk):
        writer = StepWriter()
        writer.put([one])
        deadline = time.monotonic() + 30
        while not writer._queue.empty() and time.monotonic() < deadline:  # taken: waiting for the lock
            time.sleep(0.01)
        writer.put([two])
        writer.put([{key: value for key, value in three.items() if key != "updated_nodes"}])  # malformed
    with pytest.raises(KeyError, match="updated_nodes"):
        writer.close()
    assert stored(tree) == (1, ["a", "b", "root"])  # the first step alone; the two that waited together: neither


def test_steps_waiting_together_land_as_if_stored_in_turn(committed_tree):
    tree = committed_tree
    steps = three_steps(tree.pk)
    with tree_held(tree.pk):
        writer = StepWriter()
        for s in steps:
            writer.put([s])
    writer.close()
    assert stored(tree) == (3, ["a", "a0", "a00", "a1", "b", "root"])
    assert TreeNode.objects.get(tree=tree, key="a0").visits == 2 and tree.status == "done"
