"""The focus view's word diff and offending-span marks."""

from apps.curation.diff import Segment, fragment_span, segments, word_diff
from apps.curation.display import branch


def test_word_diff_marks_the_changed_argument_not_the_whole_call():
    removed, added = word_diff("city='Lyon')]", "city='Paris')]")
    assert ["city='Lyon')]"[a:b] for a, b in removed] == ["Lyon"]
    assert ["city='Paris')]"[a:b] for a, b in added] == ["Paris"]
    assert word_diff("same text", "same text") == ([], [])
    removed, added = word_diff("", "get(x=1)")
    assert removed == [] and added == [(0, 8)]


def test_fragment_span_maps_full_response_offsets_into_the_fragment():
    prefix = "[get_weather("  # 13 characters
    assert fragment_span([18, 24], len(prefix), len("city='Lyon')]")) == (5, 11)
    assert fragment_span([0, 5], len(prefix), 10) is None  # wholly in the prefix
    assert fragment_span([10, 16], len(prefix), 10) == (0, 3)  # starts in the prefix: the fragment's part
    assert fragment_span(None, 3, 10) is None and fragment_span([], 3, 10) is None


def test_segments_combine_diff_and_offending_marks():
    got = segments("city='Lyon')]", changed=[(6, 10)], offending=(5, 11))
    assert got == [
        Segment("city="),
        Segment("'", offending=True),
        Segment("Lyon", True, True),
        Segment("'", offending=True),
        Segment(")]"),
    ]
    assert "".join(s.text for s in got) == "city='Lyon')]"
    assert segments("") == [Segment("")]


def test_branch_reports_an_offending_span_in_the_prefix():
    shown = branch(side="rejected", text="x)]", other="y)]", prefix="[f(", verdict={"span": [0, 4], "valid": False})
    assert shown.offending_in_prefix == "[f("
    assert [s for s in shown.segments if s.offending] == [Segment("x", True, True)]
