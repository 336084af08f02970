"""Search persistence: a step lands whole, re-saving is harmless, and the rows read back for a resume."""
import pytest

from apps.catalog.models import Query
from apps.search.models import SearchTree, TreeNode
from apps.search.services import tree_rows, tree_step_save, trees_create
from apps.training.services import round_create


def node(key, parent, depth, ordinal, fragment, visits=1, value=0.0, terminal=False, valid=None):
    return {"key": key, "parent_key": parent, "depth": depth, "ordinal": ordinal, "fragment": fragment,
            "prior": 0.5, "visits": visits, "value_sum": value, "is_terminal": terminal,
            "terminal_reward": value if terminal else None,
            "verdict": {"valid": valid} if valid is not None else None, "token_count": 3}


@pytest.fixture
def tree(project):
    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    rnd = round_create(project=project)
    assert trees_create(round=rnd, query_ids=[query.pk], config={"simulations": 2}) == 1
    assert trees_create(round=rnd, query_ids=[query.pk], config={}) == 1  # idempotent
    return SearchTree.objects.get()


def test_steps_persist_and_read_back(tree):
    step1 = [node("root", None, 0, 0, "", visits=2, value=0.5),
             node("a", "root", 1, 0, "[get_weather(", value=1.0),
             node("b", "root", 1, 1, "[get_time(", value=-0.5)]
    tree_step_save(tree_id=tree.pk, new_nodes=step1, updated_nodes=[], simulations_done=1)
    step2 = [node("a0", "a", 2, 0, "city='Paris')]", value=1.0, terminal=True, valid=True)]
    tree_step_save(tree_id=tree.pk, new_nodes=step2, simulations_done=2, done=True,
                   updated_nodes=[{"key": "root", "visits": 3, "value_sum": 1.5}, {"key": "a", "visits": 2, "value_sum": 2.0}])
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


def test_a_failing_step_leaves_the_last_whole_step(tree):
    tree_step_save(tree_id=tree.pk, new_nodes=[node("root", None, 0, 0, "")], updated_nodes=[], simulations_done=1)
    with pytest.raises(KeyError):
        tree_step_save(tree_id=tree.pk, new_nodes=[node("c", "root", 1, 0, "y")], simulations_done=2,
                       updated_nodes=[{"key": "missing", "visits": 1, "value_sum": 0}])
    tree.refresh_from_db()
    assert tree.simulations_done == 1 and list(TreeNode.objects.values_list("key", flat=True)) == ["root"]


def test_nul_characters_sampled_by_the_model_are_storable(tree):
    step = [node("root", None, 0, 0, ""), {**node("a", "root", 1, 0, "[f(x='a\x00b')]"),
                                           "verdict": {"valid": False, "detail": "got 'a\x00b'"}}]
    tree_step_save(tree_id=tree.pk, new_nodes=step, updated_nodes=[], simulations_done=1)
    stored = TreeNode.objects.get(key="a")
    assert stored.fragment == "[f(x='a\ufffdb')]" and stored.verdict["detail"] == "got 'a\ufffdb'"
