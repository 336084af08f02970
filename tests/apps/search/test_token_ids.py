"""Node token ids are stored compactly with each search step and read back exactly (ORM and PostgreSQL paths)."""

import pytest

from apps.search.fields import ids_from_bytes, ids_to_bytes
from apps.search.models import TreeNode
from apps.search.services import tree_rows, tree_step_save
from tests.apps.search.test_services import node, tree  # noqa: F401  (the fixture)


def test_ids_round_trip_through_a_step_and_a_resume(tree):  # noqa: F811
    big = [0, 1, 151_643, 2**32 - 1]  # real vocabularies pass 65,535
    rows = [
        {**node("r", None, 0, 0, ""), "token_ids": []},
        {**node("a", "r", 1, 0, "get_weather("), "token_ids": [5, 77, 9]},
        {**node("b", "r", 1, 1, "x"), "token_ids": big},
        {**node("c", "r", 1, 2, "from a server"), "token_ids": None},
    ]
    tree_step_save(tree_id=tree.pk, new_nodes=rows, updated_nodes=[], simulations_done=1)
    tree_step_save(tree_id=tree.pk, new_nodes=rows, updated_nodes=[], simulations_done=1)  # a redone step
    stored = {r["key"]: r["token_ids"] for r in tree_rows(tree=tree)}
    assert stored == {"r": [], "a": [5, 77, 9], "b": big, "c": None}
    assert TreeNode.objects.filter(tree=tree).count() == 4
    assert len(TreeNode.objects.get(tree=tree, key="a").token_ids) == 3


def test_the_encoding_is_four_bytes_a_token_and_refuses_bad_ids():
    assert ids_to_bytes([1, 2**32 - 1]) == b"\x01\x00\x00\x00\xff\xff\xff\xff"
    assert ids_from_bytes(ids_to_bytes([3, 2, 1])) == [3, 2, 1]
    with pytest.raises(ValueError, match="token ids"):
        ids_to_bytes([-1])
