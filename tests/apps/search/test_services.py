"""Search persistence: a step lands whole, re-saving is harmless, and the rows read back for a resume."""

import re

import pytest
from django.db import IntegrityError

from apps.catalog.models import Query
from apps.search.models import SearchTree, TreeNode
from apps.search.services import NODE_FIELDS, node_row, tree_rows, tree_step_save, trees_create, trees_steps_save
from apps.training.services import round_create
from workers.mcts import Tree


def node(key, parent, depth, ordinal, fragment, visits=1, value=0.0, terminal=False, valid=None):
    return {
        "key": key,
        "parent_key": parent,
        "depth": depth,
        "ordinal": ordinal,
        "fragment": fragment,
        "prior": 0.5,
        "visits": visits,
        "value_sum": value,
        "is_terminal": terminal,
        "terminal_reward": value if terminal else None,
        "verdict": {"valid": valid} if valid is not None else None,
        "token_count": 3,
    }


@pytest.fixture
def tree(project):
    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    rnd = round_create(project=project)
    assert trees_create(round=rnd, query_ids=[query.pk], config={"simulations": 2}) == 1
    assert trees_create(round=rnd, query_ids=[query.pk], config={}) == 1  # idempotent
    return SearchTree.objects.get()


def test_steps_persist_and_read_back(tree):
    step1 = [
        node("root", None, 0, 0, "", visits=2, value=0.5),
        node("a", "root", 1, 0, "[get_weather(", value=1.0),
        node("b", "root", 1, 1, "[get_time(", value=-0.5),
    ]
    tree_step_save(tree_id=tree.pk, new_nodes=step1, updated_nodes=[], simulations_done=1)
    step2 = [node("a0", "a", 2, 0, "city='Paris')]", value=1.0, terminal=True, valid=True)]
    tree_step_save(
        tree_id=tree.pk,
        new_nodes=step2,
        simulations_done=2,
        done=True,
        updated_nodes=[{"key": "root", "visits": 3, "value_sum": 1.5}, {"key": "a", "visits": 2, "value_sum": 2.0}],
    )
    tree.refresh_from_db()
    assert (tree.status, tree.simulations_done, tree.node_count, tree.valid_leaves) == ("done", 2, 4, 1)
    rows = {r["key"]: r for r in tree_rows(tree=tree)}
    assert rows["a0"]["parent_key"] == "a" and rows["root"]["parent_key"] is None
    assert (rows["root"]["visits"], rows["root"]["value_sum"]) == (3, 1.5)
    assert TreeNode.objects.get(key="a0").parent.key == "a"


def test_a_replayed_step_adds_nothing(tree):
    step = [node("root", None, 0, 0, ""), node("a", "root", 1, 0, "x")]
    tree_step_save(tree_id=tree.pk, new_nodes=step, updated_nodes=[], simulations_done=1)
    # a redelivered task saving the same step again: same keys, no duplicates
    tree_step_save(tree_id=tree.pk, new_nodes=step, updated_nodes=[], simulations_done=1)
    # an older step arriving late changes nothing
    tree_step_save(tree_id=tree.pk, new_nodes=[node("zzz", "root", 1, 1, "late")], updated_nodes=[], simulations_done=0)
    assert sorted(TreeNode.objects.values_list("key", flat=True)) == ["a", "root"]


def test_a_key_listed_twice_in_one_step_is_stored_once_as_first_listed(tree):
    step = [node("root", None, 0, 0, ""), node("a", "root", 1, 0, "first"), node("a", "root", 1, 1, "second")]
    tree_step_save(tree_id=tree.pk, new_nodes=step, updated_nodes=[], simulations_done=1)
    tree.refresh_from_db()
    assert list(TreeNode.objects.filter(key="a").values_list("fragment", flat=True)) == ["first"]
    assert tree.node_count == 2


def test_a_failing_step_leaves_the_last_whole_step(tree):
    tree_step_save(tree_id=tree.pk, new_nodes=[node("root", None, 0, 0, "")], updated_nodes=[], simulations_done=1)
    with pytest.raises(KeyError):
        tree_step_save(
            tree_id=tree.pk,
            new_nodes=[node("c", "root", 1, 0, "y")],
            simulations_done=2,
            updated_nodes=[{"key": "missing", "visits": 1, "value_sum": 0}],
        )
    tree.refresh_from_db()
    assert tree.simulations_done == 1 and list(TreeNode.objects.values_list("key", flat=True)) == ["root"]


@pytest.mark.parametrize(
    ("new_nodes", "updated_nodes", "message"),
    [
        ([node("a", "root", 1, 0, "x", value=float("nan"))], [], "node 'a' has value_sum = nan"),
        ([{**node("a", "root", 1, 0, "x"), "terminal_reward": float("inf")}], [], "node 'a' has terminal_reward = inf"),
        ([], [{"key": "root", "visits": 2, "value_sum": float("-inf")}], "update of node 'root' has value_sum = -inf"),
    ],
)
def test_a_non_finite_reward_is_refused_by_name_and_nothing_is_stored(tree, new_nodes, updated_nodes, message):
    tree_step_save(tree_id=tree.pk, new_nodes=[node("root", None, 0, 0, "")], updated_nodes=[], simulations_done=1)
    with pytest.raises(ValueError, match=f"tree {tree.pk}: {re.escape(message)}"):
        tree_step_save(tree_id=tree.pk, new_nodes=new_nodes, updated_nodes=updated_nodes, simulations_done=2)
    tree.refresh_from_db()
    root = TreeNode.objects.get()
    assert tree.simulations_done == 1 and (root.key, root.visits, root.value_sum) == ("root", 1, 0.0)


def test_a_step_the_database_refuses_raises_djangos_error_and_stores_nothing(tree):
    tree_step_save(tree_id=tree.pk, new_nodes=[node("root", None, 0, 0, "")], updated_nodes=[], simulations_done=1)
    with pytest.raises(IntegrityError):  # visits >= 0 is a constraint of the table
        tree_step_save(
            tree_id=tree.pk, new_nodes=[node("a", "root", 1, 0, "x", visits=-1)], updated_nodes=[], simulations_done=2
        )
    tree.refresh_from_db()
    assert tree.simulations_done == 1 and list(TreeNode.objects.values_list("key", flat=True)) == ["root"]


def test_nul_characters_sampled_by_the_model_are_storable(tree):
    step = [
        node("root", None, 0, 0, ""),
        {**node("a", "root", 1, 0, "[f(x='a\x00b')]"), "verdict": {"valid": False, "detail": "got 'a\x00b'"}},
    ]
    tree_step_save(tree_id=tree.pk, new_nodes=step, updated_nodes=[], simulations_done=1)
    stored = TreeNode.objects.get(key="a")
    assert stored.fragment == "[f(x='a\ufffdb')]" and stored.verdict["detail"] == "got 'a\ufffdb'"


def test_numbers_a_model_wrote_are_stored_as_json_can_hold_them(tree):
    """A call's argument past 64 bits is kept exactly; an infinite one (`1e999`) has no JSON form and is kept as
    null, on both databases; neither stops the search."""
    calls = [{"name": "get_user", "arguments": {"id": 123456789012345678901234, "scale": float("inf"), "x": 0.1}}]
    step = [node("root", None, 0, 0, ""), {**node("a", "root", 1, 0, "[get_user("), "verdict": {"calls": calls}}]
    tree_step_save(tree_id=tree.pk, new_nodes=step, updated_nodes=[], simulations_done=1)
    arguments = TreeNode.objects.get(key="a").verdict["calls"][0]["arguments"]
    assert arguments == {"id": 123456789012345678901234, "scale": None, "x": 0.1}


def test_one_step_of_many_trees_lands_in_one_call_like_tree_by_tree(project):
    queries = [
        Query.objects.create(project=project, external_id=f"q{i}", source="x", messages=[], content_hash=f"c{i}")
        for i in range(3)
    ]
    rnd = round_create(project=project)
    trees_create(round=rnd, query_ids=[q.pk for q in queries], config={"simulations": 2})
    a, b, c = SearchTree.objects.order_by("id")

    def first(tree):
        return {
            "tree_id": tree.pk,
            "new_nodes": [node("root", None, 0, 0, "", visits=1), node("x", "root", 1, 0, f"[f{tree.pk}(", value=0.5)],
            "updated_nodes": [],
            "simulations_done": 1,
            "done": False,
        }

    trees_steps_save(steps=[first(a), first(b), first(c)])
    trees_steps_save(
        steps=[
            {
                "tree_id": a.pk,
                "new_nodes": [
                    node("x0", "x", 2, 0, "v=1)]", value=1.0, terminal=True, valid=True),
                    node("x1", "x", 2, 1, "v=2)]", value=-1.0, terminal=True, valid=False),
                ],
                "updated_nodes": [
                    {"key": "root", "visits": 3, "value_sum": 0.5},
                    {"key": "x", "visits": 3, "value_sum": 0.5},
                ],
                "simulations_done": 2,
                "done": True,
            },
            {
                "tree_id": b.pk,
                "new_nodes": [node("x0", "x", 2, 0, "w=3)]", value=1.0, terminal=True, valid=True)],
                "updated_nodes": [{"key": "root", "visits": 2, "value_sum": 1.0}],
                "simulations_done": 2,
                "done": False,
            },
            first(c),  # a redelivered older step of c: nothing new
        ]
    )
    a, b, c = SearchTree.objects.order_by("id")
    assert (a.status, a.simulations_done, a.node_count, a.valid_leaves) == ("done", 2, 4, 1) and a.finished_at
    assert (b.status, b.simulations_done, b.node_count, b.valid_leaves) == ("running", 2, 3, 1) and not b.finished_at
    assert (c.simulations_done, c.node_count) == (1, 2)
    rows = {r["key"]: r for r in tree_rows(tree=a)}
    assert rows["x1"]["parent_key"] == "x" and (rows["root"]["visits"], rows["x"]["value_sum"]) == (3, 0.5)
    assert TreeNode.objects.get(tree=b, key="x0").parent == TreeNode.objects.get(tree=b, key="x")
    assert (TreeNode.objects.get(tree=b, key="root").visits, TreeNode.objects.get(tree=c, key="root").visits) == (2, 1)

    # one bad change in the batch: none of the batch lands
    with pytest.raises(KeyError, match="no node 'missing'"):
        trees_steps_save(
            steps=[
                {
                    "tree_id": b.pk,
                    "new_nodes": [node("y", "root", 1, 1, "z")],
                    "updated_nodes": [],
                    "simulations_done": 3,
                    "done": False,
                },
                {
                    "tree_id": c.pk,
                    "new_nodes": [],
                    "updated_nodes": [{"key": "missing", "visits": 1, "value_sum": 0}],
                    "simulations_done": 2,
                    "done": False,
                },
            ]
        )
    assert not TreeNode.objects.filter(tree=b, key="y").exists()
    assert SearchTree.objects.get(pk=b.pk).simulations_done == 2


def test_a_node_row_holds_exactly_the_stored_fields_and_is_a_snapshot():
    tree = Tree.new(1, "prompt")
    row = node_row(tree.root)
    assert set(row) == {"parent_key", *NODE_FIELDS}
    tree.root.visits += 3
    assert row["visits"] == 0  # the search's later backups do not reach a step already reported
