"""The search tree: UCT selection, backup, deterministic keys, rows."""

import math

import pytest

from workers.mcts.tree import Node, Tree, child_key, root_key, uct_score


def grow(tree, parent, fragment, visits=0, value_sum=0.0, prior=1.0, **extra):
    return tree.add_child(parent, fragment=fragment, visits=visits, value_sum=value_sum, prior=prior, **extra)


@pytest.fixture
def three_children():
    """Root visited 3 times; children A, B, C visited once each."""
    tree = Tree.new("t1", "PROMPT ")
    tree.root.visits, tree.root.value_sum = 3, 0.2
    a = grow(tree, tree.root, "[get_weather(", 1, 1.0, prior=0.5)
    b = grow(tree, tree.root, "[get_time(", 1, 0.2, prior=0.9)
    c = grow(tree, tree.root, "I cannot", 1, -1.0, prior=1.0)
    return tree, a, b, c


def test_uct_score_by_hand(three_children):
    tree, a, b, c = three_children
    explore = math.sqrt(math.log(3) / 2)  # 0.7412
    assert uct_score(a, 3, 1.0) == pytest.approx(1.0 / 2 + 0.5 * explore)  # 0.8706
    assert uct_score(b, 3, 1.0) == pytest.approx(0.2 / 2 + 0.9 * explore)  # 0.7671
    assert uct_score(c, 3, 1.0) == pytest.approx(-1.0 / 2 + 1.0 * explore)  # 0.2412
    assert tree.select_leaf(c_puct=1.0, max_depth=3) is a


def test_exploration_weight_changes_the_choice(three_children):
    tree, a, b, c = three_children
    # With c = 3: A = 0.5 + 1.5·0.7412 = 1.612, B = 0.1 + 2.7·0.7412 = 2.101, C = -0.5 + 2.224 = 1.724.
    assert tree.select_leaf(c_puct=3.0, max_depth=3) is b
    # Without exploration, value alone: A.
    assert tree.select_leaf(c_puct=0.0, max_depth=3) is a


def test_unvisited_child_against_visited_ones():
    tree = Tree.new("t2", "")
    tree.root.visits = 4
    visited = grow(tree, tree.root, "x", visits=4, value_sum=2.0, prior=0.5)
    unvisited = grow(tree, tree.root, "y", visits=0, value_sum=0.0, prior=0.6)
    # visited: 2/5 + 0.5·sqrt(ln4/5) = 0.4 + 0.2632 = 0.6632; unvisited: 0 + 0.6·sqrt(ln4) = 0.7064
    assert uct_score(visited, 4, 1.0) == pytest.approx(0.4 + 0.5 * math.sqrt(math.log(4) / 5))
    assert uct_score(unvisited, 4, 1.0) == pytest.approx(0.6 * math.sqrt(math.log(4)))
    assert tree.select_leaf(1.0, 3) is unvisited
    unvisited.prior = 0.4  # 0.4·1.1774 = 0.4710 < 0.6632
    assert tree.select_leaf(1.0, 3) is visited


@pytest.mark.parametrize("parent_visits", [0, 1])
def test_parent_visited_at_most_once_uses_value_then_ordinal(parent_visits):
    tree = Tree.new("t3", "")
    tree.root.visits = parent_visits
    first = grow(tree, tree.root, "a", prior=0.1)
    second = grow(tree, tree.root, "b", prior=1.0)
    assert uct_score(second, parent_visits, 1.0) == 0.0  # ln 1 = 0; ln 0 taken as 0: no exploration
    assert tree.select_leaf(1.0, 3) is first  # a tie goes to the lower ordinal, whatever the priors
    second.value_sum = 0.5
    assert tree.select_leaf(1.0, 3) is second


def test_select_leaf_descends_and_skips_exhausted_subtrees():
    tree = Tree.new("t4", "")
    tree.root.visits = 3
    best = grow(tree, tree.root, "a", visits=2, value_sum=2.0)
    other = grow(tree, tree.root, "b", visits=1, value_sum=-1.0)
    deep = grow(tree, best, "c", visits=1, value_sum=1.0)
    grow(tree, best, "d", visits=1, value_sum=1.0, is_terminal=True, terminal_reward=1.0)
    assert tree.select_leaf(1.0, 3) is deep
    deep.is_terminal, deep.terminal_reward = True, 1.0  # best's subtree is now exhausted
    assert tree.select_leaf(1.0, 3) is other
    other.is_terminal = True
    assert tree.select_leaf(1.0, 3) is None


def test_select_leaf_never_returns_terminal_or_depth_capped_nodes():
    tree = Tree.new("t5", "")
    tree.root.visits = 2
    capped = grow(tree, tree.root, "a", visits=1, value_sum=1.0)
    terminal = grow(tree, tree.root, "b", visits=1, value_sum=5.0, is_terminal=True, terminal_reward=1.0)
    assert tree.select_leaf(1.0, max_depth=1) is None  # capped is at the depth cap, terminal is terminal
    assert tree.select_leaf(1.0, max_depth=2) is capped  # though terminal has the higher value
    assert terminal.is_terminal


def test_backup_adds_along_the_path():
    tree = Tree.new("t6", "")
    a = grow(tree, tree.root, "a", 1, 0.5)
    b = grow(tree, a, "b", 1, -0.5)
    tree.backup(tree.path(b), reward_sum=1.2, rollouts=3)
    assert [(n.visits, n.value_sum) for n in tree.path(b)] == [(3, 1.2), (4, 1.7), (4, pytest.approx(0.7))]
    assert b.value == pytest.approx(0.7 / 4)
    assert Node("k", None, 0, 0).value == 0.0  # no visits, no division by zero


def test_keys_are_deterministic_and_distinct():
    assert root_key(7) == root_key(7) != root_key(8)
    assert len(root_key(7)) == 32
    assert child_key(root_key(7), 0) == child_key(root_key(7), 0) != child_key(root_key(7), 1)
    first, second = Tree.new(7, "p"), Tree.new(7, "p")
    assert grow(first, first.root, "x").key == grow(second, second.root, "something else").key
    assert first.root.key == root_key(7)


def test_ordinals_continue_after_existing_children():
    tree = Tree.new("t7", "")
    grow(tree, tree.root, "a")
    rows = tree.to_rows()
    del rows[1]["key"]
    rows[1].update(key=child_key(tree.root.key, 4), ordinal=4)  # a gap, as if ordinals 0-3 were merged away
    loaded = Tree.from_rows("t7", "", rows)
    new = grow(loaded, loaded.root, "b")
    assert new.ordinal == 5 and new.key == child_key(loaded.root.key, 5)


def test_path_text_concatenates_fragments_from_the_root():
    tree = Tree.new("t8", "<prompt>")
    a = grow(tree, tree.root, "[get_weather(city=")
    b = grow(tree, a, "'Paris', date=")
    c = grow(tree, b, "'2025-01-02')]")
    assert tree.path_text(tree.root) == ""
    assert tree.path_text(c) == "[get_weather(city='Paris', date='2025-01-02')]"
    assert [n.key for n in tree.path(c)] == [tree.root.key, a.key, b.key, c.key]
    assert (a.depth, b.depth, c.depth) == (1, 2, 3)


def test_rows_round_trip(three_children):
    tree, a, b, c = three_children
    grow(
        tree,
        a,
        "city=",
        1,
        1.0,
        is_terminal=True,
        terminal_reward=1.0,
        verdict={"valid": True, "span": None},
        token_count=3,
    )
    tree.simulations_done = 2
    rows = tree.to_rows()
    assert {row["key"] for row in rows} == set(tree.nodes)
    assert rows[0]["parent_key"] is None and all(r["parent_key"] for r in rows[1:])
    loaded = Tree.from_rows("t1", "PROMPT ", list(reversed(rows)), simulations_done=2)
    assert loaded.to_rows() == rows
    assert loaded.simulations_done == 2 and loaded.prompt == "PROMPT "
    assert loaded.children == tree.children
    assert loaded.drain_new_nodes() == []  # stored nodes are not new


def test_from_rows_refuses_broken_trees(three_children):
    tree, *_ = three_children
    rows = tree.to_rows()
    with pytest.raises(ValueError, match="unknown parent"):
        Tree.from_rows("t1", "", [rows[0], {**rows[1], "parent_key": "missing"}])
    with pytest.raises(ValueError, match="duplicate node key"):
        Tree.from_rows("t1", "", rows + [rows[1]])
    with pytest.raises(ValueError, match="no root"):
        Tree.from_rows("t1", "", [])
    with pytest.raises(ValueError, match="two roots"):
        Tree.from_rows("t1", "", rows + [{**rows[0], "key": "another root"}])
    with pytest.raises(ValueError, match="not this tree's"):
        Tree.from_rows("another tree", "", rows)


def test_new_tree_reports_its_root_once():
    tree = Tree.new("t9", "")
    child = grow(tree, tree.root, "a")
    assert [n.key for n in tree.drain_new_nodes()] == [tree.root.key, child.key]
    assert tree.drain_new_nodes() == []
