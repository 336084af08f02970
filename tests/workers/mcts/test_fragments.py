"""Fragments: lossless splitting on iTool's delimiters, grouping into nodes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.mcts.config import MCTSConfig
from workers.mcts.fragments import first_step, group_fragments, split_fragments

ITOOL = MCTSConfig().delimiters
CALL = "[get_weather(city='Paris', date='2025-01-02')]"


def test_call_string_splits_after_each_itool_delimiter():
    assert split_fragments(CALL, ITOOL) == [
        "[get_weather(",
        "city=",
        "'Paris', ",
        "date=",
        "'2025-01-02')]",
    ]


def test_sentence_delimiter_keeps_its_space():
    assert split_fragments("Sure. I will call it, then answer.", ITOOL) == [
        "Sure. ",
        "I will call it, ",
        "then answer.",
    ]


def test_longer_delimiter_wins_at_the_same_position():
    assert split_fragments("a. b", (".", ". ")) == ["a. ", "b"]


def test_empty_text_and_text_without_delimiters():
    assert split_fragments("", ITOOL) == []
    assert split_fragments("no delimiters here", ITOOL) == ["no delimiters here"]
    assert split_fragments("((", ITOOL) == ["(", "("]


@given(st.text(alphabet=st.sampled_from(list("ab .,=(')[]\n")), max_size=60), st.integers(1, 4))
def test_split_and_group_are_lossless(text, step_limit):
    pieces = split_fragments(text, ITOOL)
    assert "".join(pieces) == text
    assert all(pieces)
    assert "".join(group_fragments(pieces, step_limit)) == text
    fragment, rest = first_step(text, ITOOL, step_limit)
    assert fragment + rest == text


@given(st.text(max_size=80))
def test_lossless_on_any_unicode(text):
    assert "".join(split_fragments(text, ITOOL)) == text


def test_grouping_takes_step_limit_pieces_per_node():
    pieces = split_fragments(CALL, ITOOL)
    assert group_fragments(pieces, 2) == ["[get_weather(city=", "'Paris', date=", "'2025-01-02')]"]
    assert first_step(CALL, ITOOL, 2) == ("[get_weather(city=", "'Paris', date='2025-01-02')]")
    with pytest.raises(ValueError, match="step_limit"):
        group_fragments(pieces, 0)
