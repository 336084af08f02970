"""Cutting a sampled response into the fragments that become tree nodes, without losing a character.

iTool (mcts_vllm.py get_actions) splits on `. `, `, `, `=` and `(`, keeps each delimiter with the piece
before it, and groups `step_limit` pieces per node. It joins a group's pieces with a space, which changes
the text; here pieces are joined as they were, so the fragments of a path concatenate to the response.

Cuts are made on characters; when the sample's token ids are known, `snap_to_token` moves a cut to the end
of the token it falls in, so that a node holds whole tokens (docs/token-ids.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache


@lru_cache(maxsize=32)
def _delimiter_pattern(delimiters: tuple[str, ...]) -> re.Pattern:
    # Longest first, so that at one position ". " wins over a shorter delimiter that it starts with.
    ordered = sorted(set(delimiters), key=len, reverse=True)
    return re.compile("|".join(re.escape(d) for d in ordered))


def split_fragments(text: str, delimiters: tuple[str, ...]) -> list[str]:
    """Pieces of `text`, each ending just after a delimiter (the last may end without one).

    `"".join(split_fragments(text, delimiters)) == text` always; empty text gives no pieces.
    """
    pieces, start = [], 0
    for match in _delimiter_pattern(tuple(delimiters)).finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def group_fragments(pieces: list[str], step_limit: int) -> list[str]:
    """Consecutive pieces joined `step_limit` at a time: the fragments of successive nodes."""
    if step_limit < 1:
        raise ValueError(f"step_limit must be a positive integer, got {step_limit!r}")
    return ["".join(pieces[i : i + step_limit]) for i in range(0, len(pieces), step_limit)]


def first_step(text: str, delimiters: tuple[str, ...], step_limit: int) -> tuple[str, str]:
    """(fragment, rest): the first `step_limit` pieces of `text`, and what follows them."""
    end = len(text)
    for count, match in enumerate(_delimiter_pattern(tuple(delimiters)).finditer(text), start=1):
        if count == step_limit:  # the rest is not split: only the first fragment is wanted
            end = match.end()
            break
    return text[:end], text[end:]


def snap_to_token(text: str, token_ids: list[int], cut: int, decode: Callable[[list[int]], str]) -> tuple[int, str]:
    """How many leading tokens of a sample make its first fragment, given a cut after `cut` characters, and
    their text.

    The fewest tokens whose text covers `text[:cut]` and ends on a character boundary of `text`: the cut moves
    to the end of the token it falls in (never back: a delimiter stays with the piece before it, as iTool
    keeps it), by less than one token. `decode(token_ids) == text` is the caller's to check; a token holding
    part of a UTF-8 character is not a boundary, so the cut moves on to the token completing it.

    Decoding is the costly part (the search does it for every sample), so the search for the smallest count
    whose text is at least `cut` characters long starts where `cut` falls in proportion to the text, widens
    its steps from there until it brackets that count, then halves the bracket: a few decodes where a
    bisection of the whole sample takes log2 of its length. Each prefix is decoded at most once.
    """
    if cut <= 0:
        return 0, ""
    texts: dict[int, str] = {len(token_ids): text}  # all the tokens spell the text (the caller checked)

    def prefix(count: int) -> str:
        if count not in texts:
            texts[count] = decode(token_ids[:count])
        return texts[count]

    n = len(token_ids)
    low, high = 0, n  # the count sought is in (low, high]: prefix(low) is shorter than `cut` (or low is 0)
    guess = min(n, max(1, round(n * cut / max(len(text), 1))))
    step = 1
    if len(prefix(guess)) >= cut:
        high = guess
        while high - step >= 1 and len(prefix(high - step)) >= cut:
            high -= step
            step *= 2
        low = max(0, high - step)
    else:
        low = guess
        while low + step < n and len(prefix(low + step)) < cut:
            low += step
            step *= 2
        high = min(n, low + step)
    while high - low > 1:
        middle = (low + high) // 2
        if len(prefix(middle)) >= cut:
            high = middle
        else:
            low = middle
    count = high
    while count < n and not text.startswith(prefix(count)):
        count += 1
    return count, prefix(count)
