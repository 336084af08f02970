"""The search's step writer: steps stored on a thread of their own, in order, while the search goes on; the
first failure stops it and reaches the search; inside an open transaction, steps are stored inline."""

import threading
from contextlib import contextmanager

import pytest
from django.db import connection, connections

from apps.catalog.models import Query
from apps.projects.models import Project
from apps.search.models import SearchTree, TreeNode
from apps.search.services import StepWriter, trees_create, trees_steps_save
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
    assert writer.busy > 0 and writer.waited >= 0
    assert not any(t.name == "search-step-writer" for t in threading.enumerate())  # closed: its thread ended


def test_the_first_failure_stops_the_writer_and_reaches_the_search(committed_tree):
    tree = committed_tree
    writer = StepWriter()
    writer.put([step(tree.pk, [node("root", None, 0, 0, "")], 1)])
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
