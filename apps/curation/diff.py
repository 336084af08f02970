"""Word-level diff of two fragments and the offending span, as text segments the review pages highlight."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

# Words, runs of space, and single punctuation marks: `city='Lyon')]` diffs as city ' Lyon ' ) ],
# so a changed argument value stands out instead of the whole call.
TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


@dataclass(frozen=True)
class Segment:
    text: str
    changed: bool = False  # not in the other fragment
    offending: bool = False  # inside the checker's offending span


def _token_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in TOKEN.finditer(text)]


def word_diff(old: str, new: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character ranges of `old` missing from `new`, and of `new` missing from `old`, by word tokens."""
    old_spans, new_spans = _token_spans(old), _token_spans(new)
    old_tokens = [old[a:b] for a, b in old_spans]
    new_tokens = [new[a:b] for a, b in new_spans]
    removed, added = [], []
    matcher = SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            removed.append((old_spans[i1][0], old_spans[i2 - 1][1]))
        if j2 > j1:
            added.append((new_spans[j1][0], new_spans[j2 - 1][1]))
    return removed, added


def fragment_span(span, prefix_length: int, fragment_length: int) -> tuple[int, int] | None:
    """The part of a verdict span (offsets into prefix + fragment) that falls inside the fragment, as
    offsets into the fragment; None when the span is missing or lies wholly in the prefix."""
    if not span or len(span) != 2:
        return None
    start = max(int(span[0]) - prefix_length, 0)
    end = min(int(span[1]) - prefix_length, fragment_length)
    return (start, end) if end > start else None


def segments(text: str, changed: list[tuple[int, int]] = (), offending: tuple[int, int] | None = None) -> list[Segment]:
    """Split `text` where the changed / offending marks start or stop."""
    cuts = {0, len(text)}
    for start, end in [*changed, *([offending] if offending else [])]:
        cuts.update((max(0, min(start, len(text))), max(0, min(end, len(text)))))
    bounds = sorted(cuts)
    out = []
    for start, end in zip(bounds, bounds[1:]):
        if start == end:
            continue
        is_changed = any(a <= start and end <= b for a, b in changed)
        is_offending = bool(offending) and offending[0] <= start and end <= offending[1]
        out.append(Segment(text[start:end], is_changed, is_offending))
    return out or [Segment(text)]
