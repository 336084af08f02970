"""Pair extraction: chosen/rejected at branching nodes, iTool's filters, deficiency and span, dedupe."""

import pytest

from workers.mcts.config import MCTSConfig, PairConfig
from workers.mcts.pairs import dedupe, extract_pairs, span_in_fragment, word_overlap
from workers.mcts.search import run_search
from workers.mcts.tree import Tree

from .test_search import ScriptedBackend, new_trees, scorers_for


def verdict(deficiency="", span=None, reward=1.0):
    return {"valid": not deficiency, "deficiency": deficiency, "span": span, "reward": reward}


def child(tree, parent, fragment, values, verdict_=None, **extra):
    """A child whose rollouts scored `values`."""
    return tree.add_child(
        parent, fragment=fragment, visits=len(values), value_sum=sum(values), verdict=verdict_, **extra
    )


@pytest.fixture
def weather_tree():
    """Root → "[get_weather(city=" (→ Paris / Lyon / Rome) and "[get_time(city=" (one child: no pair there)."""
    tree = Tree.new("w", "<prompt>")
    weather = child(tree, tree.root, "[get_weather(city=", [1.0, 0.2, 0.2, 1.0])
    paris = child(tree, weather, "'Paris', date=", [1.0, 1.0])
    # Response "[get_weather(city='Lyon', date=…)]": the checker's span [18, 24) is 'Lyon' in the fragment.
    lyon = child(tree, weather, "'Lyon', date=", [0.2], verdict("wrong_value", [18, 24], 0.2))
    rome = child(tree, weather, "'Rome', date=", [0.2, 0.6])
    time = child(tree, tree.root, "[get_time(city=", [-0.6], verdict("wrong_function", [1, 23], -0.6))
    child(tree, time, "'Paris')]", [-0.6])
    return tree, weather, paris, lyon, rome, time


def test_chosen_is_the_best_child_and_rejected_the_worst(weather_tree):
    tree, weather, paris, lyon, rome, time = weather_tree
    pairs = extract_pairs(tree, PairConfig())
    assert [(p.node_key, p.chosen_key, p.rejected_key) for p in pairs] == [
        (tree.root.key, weather.key, time.key),  # 0.6 vs -0.6
        (weather.key, paris.key, lyon.key),  # 1.0 vs 0.2; Rome (0.4) is in between
    ]
    top, inner = pairs
    assert (top.prefix, top.chosen, top.rejected) == ("", "[get_weather(city=", "[get_time(city=")
    assert top.gap == pytest.approx(1.2) and top.chosen_value == pytest.approx(0.6)
    assert (top.chosen_visits, top.rejected_visits) == (4, 1)
    assert (inner.prefix, inner.chosen, inner.rejected) == ("[get_weather(city=", "'Paris', date=", "'Lyon', date=")
    assert inner.rejected_value == pytest.approx(0.2) and inner.gap == pytest.approx(0.8)


def test_deficiency_and_span_come_from_the_rejected_rollout(weather_tree):
    tree, *_ = weather_tree
    top, inner = extract_pairs(tree, PairConfig())
    assert top.deficiency == "wrong_function"
    assert top.rejected_span is None  # [1, 23) runs past the 15-character fragment
    assert inner.deficiency == "wrong_value" and inner.rejected_verdict["span"] == [18, 24]
    start, end = inner.rejected_span
    assert (start, end) == (0, 6) and inner.rejected[start:end] == "'Lyon'"
    assert inner.chosen_verdict is None  # no verdict stored for Paris here


def test_span_rebasing():
    assert span_in_fragment({"span": [13, 15]}, 10, "abcde") == (3, 5)
    assert span_in_fragment({"span": [10, 15]}, 10, "abcde") == (0, 5)
    assert span_in_fragment({"span": [9, 12]}, 10, "abcde") is None  # starts in the prefix
    assert span_in_fragment({"span": [12, 16]}, 10, "abcde") is None  # ends in the rollout's continuation
    assert span_in_fragment({"span": None}, 10, "abcde") is None
    assert span_in_fragment(None, 10, "abcde") is None


def test_gap_filter(weather_tree):
    tree, *_ = weather_tree
    assert len(extract_pairs(tree, PairConfig(gap_min=0.8))) == 2  # gaps 1.2 and 0.8 (≥ keeps)
    assert [p.gap for p in extract_pairs(tree, PairConfig(gap_min=1.0))] == [pytest.approx(1.2)]
    assert extract_pairs(tree, PairConfig(gap_min=1.3)) == []


def test_chosen_value_filter(weather_tree):
    tree, *_ = weather_tree
    # Chosen values: 0.6 at the root, 1.0 under "[get_weather(city=".
    assert [p.chosen_value for p in extract_pairs(tree, PairConfig(chosen_value_min=0.7))] == [pytest.approx(1.0)]
    assert extract_pairs(tree, PairConfig(chosen_value_min=1.01)) == []


def test_default_chosen_value_min_drops_pairs_between_two_bad_fragments():
    tree = Tree.new("bad", "")
    child(tree, tree.root, "[get_time(", [-0.4])
    child(tree, tree.root, "I cannot", [-1.0])
    assert extract_pairs(tree, PairConfig()) == []  # -0.4 < -0.3
    assert len(extract_pairs(tree, PairConfig(chosen_value_min=-0.5))) == 1


def test_word_overlap_is_itools_ratio():
    assert word_overlap("a b c d", "a b x") == pytest.approx(2 / 3)  # over the smaller set, not the union
    assert word_overlap("a a b", "b a") == 1.0  # sets of words
    assert word_overlap("get_weather(city='Paris',", "get_weather(city='Lyon',") == 0.0
    assert word_overlap("", "") == 1.0 and word_overlap("", "a") == 0.0


def test_overlap_filter():
    tree = Tree.new("o", "")
    child(tree, tree.root, "the weather in Paris today", [1.0])
    child(tree, tree.root, "the weather in Lyon today", [0.0])  # 4 of 5 words shared: 0.8
    assert len(extract_pairs(tree, PairConfig())) == 1
    assert len(extract_pairs(tree, PairConfig(overlap_max=0.8))) == 1
    assert extract_pairs(tree, PairConfig(overlap_max=0.79)) == []


def test_equal_values_pick_distinct_children_by_ordinal():
    tree = Tree.new("eq", "")
    first = child(tree, tree.root, "a", [0.5])
    second = child(tree, tree.root, "b", [0.5])
    (pair,) = extract_pairs(tree, PairConfig(gap_min=0.0))
    assert (pair.chosen_key, pair.rejected_key, pair.gap) == (first.key, second.key, 0.0)
    assert extract_pairs(tree, PairConfig()) == []  # gap 0 < 0.1


def test_dedup_key_and_dedupe(weather_tree):
    tree, *_ = weather_tree
    pairs = extract_pairs(tree, PairConfig())
    assert len({p.dedup_key for p in pairs}) == 2
    again = extract_pairs(tree, PairConfig())
    assert [p.dedup_key for p in again] == [p.dedup_key for p in pairs]  # a function of the texts
    other_query = Tree.from_rows("w", "<another prompt>", tree.to_rows())
    assert extract_pairs(other_query, PairConfig())[0].dedup_key != pairs[0].dedup_key

    weaker = extract_pairs(tree, PairConfig())[0]
    weaker.gap = 0.5
    stronger = extract_pairs(tree, PairConfig())[0]
    merged = dedupe([weaker, pairs[1], stronger])
    assert [p.dedup_key for p in merged] == [pairs[0].dedup_key, pairs[1].dedup_key]
    assert merged[0] is stronger


def test_pairs_from_a_searched_tree():
    config = MCTSConfig()
    trees = new_trees()
    run_search(trees, ScriptedBackend(), scorers_for(trees), config)
    pairs = [p for tree in trees for p in extract_pairs(tree, PairConfig())]
    by_rejected = {(p.prefix, p.rejected): p for p in pairs}
    lyon = by_rejected[("[get_weather(city=", "'Lyon', date=")]
    assert lyon.chosen == "'Paris', date=" and lyon.deficiency == "wrong_value"
    assert lyon.rejected[slice(*lyon.rejected_span)] == "'Lyon'"
    assert all(p.gap >= 0.1 and p.chosen_value >= -0.3 for p in pairs)
    assert {p.deficiency for p in pairs} >= {"wrong_value", "wrong_function", "call_on_irrelevant"}
    assert len(dedupe(pairs)) == len(pairs)
