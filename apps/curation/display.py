"""What the focus view shows of a pair: both branches side by side with their word diff and verdict marks."""

from __future__ import annotations

from dataclasses import dataclass

from .diff import Segment, fragment_span, segments, word_diff
from .models import PreferencePair


@dataclass(frozen=True)
class Branch:
    side: str  # "chosen" or "rejected"
    text: str
    value: float
    visits: int
    verdict: dict | None
    segments: list[Segment]  # the fragment, words not in the other branch and the offending span marked
    offending_in_prefix: str  # the part of the offending span that lies in the shared prefix, if any


def _offending_in_prefix(verdict: dict | None, prefix: str) -> str:
    span = (verdict or {}).get("span")
    if not span or len(span) != 2 or span[0] >= len(prefix):
        return ""
    return prefix[max(span[0], 0) : min(span[1], len(prefix))]


def branch(
    *, side: str, text: str, other: str, prefix: str, verdict: dict | None, value: float = 0.0, visits: int = 0
) -> Branch:
    """One side of a pair: `text` diffed against `other`, the verdict's span mapped into the fragment."""
    _, changed = word_diff(other, text)
    offending = fragment_span((verdict or {}).get("span"), len(prefix), len(text))
    return Branch(
        side, text, value, visits, verdict, segments(text, changed, offending), _offending_in_prefix(verdict, prefix)
    )


def pair_branches(pair: PreferencePair) -> tuple[Branch, Branch]:
    chosen = branch(
        side="chosen",
        text=pair.chosen,
        other=pair.rejected,
        prefix=pair.prefix,
        verdict=pair.chosen_verdict,
        value=pair.chosen_value,
        visits=pair.chosen_visits,
    )
    rejected = branch(
        side="rejected",
        text=pair.rejected,
        other=pair.chosen,
        prefix=pair.prefix,
        verdict=pair.rejected_verdict,
        value=pair.rejected_value,
        visits=pair.rejected_visits,
    )
    return chosen, rejected


def edit_diff(original: str, edited: str) -> tuple[list[Segment], list[Segment]]:
    """An edit shown as a diff: the original with removed words marked, the edit with added words marked."""
    removed, added = word_diff(original, edited)
    return segments(original, removed), segments(edited, added)
