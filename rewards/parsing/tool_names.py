"""Call lists naming tools or parameters that are no Python name (ToolACE): `[Market Trends API(from="2024")]`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import count
from keyword import iskeyword

from .calls import CallSyntaxError, ParsedCall
from .python_calls import parse_python_calls

# ToolACE keeps its tools' names as their sources wrote them — `Market Trends API`, `products/list`,
# `Detrended Price Oscillator (DPO)`, `Get Agent's Active Listings` — and some parameters are Python keywords
# (`from`, `to`… `from` is one). Python's parser cannot read `[Market Trends API(x=1)]` or `f(from="2024")`, so
# where such a name stands as a call's name or an argument's, it is swapped for a placeholder name of the
# same length (every span stays right), the text is parsed as any call list, and the names are put back.
# The offered names (tools' and parameters') are swapped wherever they stand so; any other run of words
# before `(` at a call's place (a misspelt or invented tool) is swapped too, but then the text must parse,
# or it is read as before (prose, most likely).

_OPEN_PAREN_RE = re.compile(r"\s*+\(")
_ASSIGN_RE = re.compile(r"\s*+=(?!=)")
_ARGS_START_RE = re.compile(r"\s*+(?:\)|[^\W\d]\w*+\s*+=(?!=))")
_LITERAL_START_RE = re.compile(r"""\s*+["'\[{\d-]""")
_SPACES_RE = re.compile(r"\s*+")
_LOOSE_NAME_RE = re.compile(r"""[^\s()\[\]{}=,'"\\]++(?:[ \t]++[^\s()\[\]{}=,'"\\]++)*+(?=\s*+\()""")
_WORD_RE = re.compile(r"\w+")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def is_python_name(name: str) -> bool:
    """A (dotted) name Python's parser reads as a call's name: `f`, `math.factorial`."""
    return all(part.isidentifier() and not iskeyword(part) for part in name.split("."))


def names_in_tools(schemas) -> list[str]:
    """The names offered tools use — their own and their parameters' — from {name: parameters schema}."""
    names = list(schemas)
    for params in schemas.values():
        properties = params.get("properties") if isinstance(params, dict) else None
        if isinstance(properties, dict):
            names.extend(properties)
    return names


@lru_cache(maxsize=1024)
def _exotic(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        sorted({n for n in names if isinstance(n, str) and n and not is_python_name(n)}, key=lambda n: (-len(n), n))
    )


def call_names(names: Iterable[str]) -> tuple[str, ...]:
    """The names that need the swap, longest first (`Market Trends API` is tried before `API`)."""
    names = tuple(names or ())
    return _exotic(names) if names else ()


def _parse_named_calls(body: str, offset: int, names: tuple[str, ...]) -> list[ParsedCall] | None:
    """Calls from a call list whose call or argument names include names that are no Python name; None when
    there are none, or when only unoffered names were swapped and the text still does not parse (then it is
    read as usual). A list naming offered names that does not parse is malformed (CallSyntaxError)."""
    sites = _name_sites(body, names)
    if not sites:
        return None
    taken = set(_WORD_RE.findall(body))  # a placeholder must not read as anything already in the text
    placeholder_of: dict[str, str] = {}
    pieces, last = [], 0
    for start, name, _ in sites:
        if name not in placeholder_of:
            placeholder = next((p for p in _placeholders(len(name)) if p not in taken), None)
            if placeholder is None:
                return None
            taken.add(placeholder)
            placeholder_of[name] = placeholder
        pieces += [body[last:start], placeholder_of[name]]
        last = start + len(name)
    pieces.append(body[last:])
    try:
        calls = parse_python_calls("".join(pieces), offset)
    except CallSyntaxError:
        if any(offered for _, _, offered in sites):
            raise
        return None
    name_of = {placeholder: name for name, placeholder in placeholder_of.items()}
    for call in calls:
        call.rename(name_of)
    return calls


def _name_sites(body: str, names: tuple[str, ...]) -> list[tuple[int, str, bool]]:
    """(start, name, offered) of each name to swap: call names at the call list's top level (after `[` and
    each top-level comma; a bare call at the start) and argument names inside those calls (after `(` and
    each comma). Strings are skipped; text that is no call list (an unclosed string, a stray closing
    bracket) gives none."""
    top = 1 if body.startswith("[") else 0  # bracket depth at which call names stand
    depth, i = top, top
    expect = "call"  # the kind of name that may start here: "call", "arg" or ""
    sites = []
    while i < len(body):
        char = body[i]
        if expect:
            if char.isspace():
                i += 1
                continue
            site = _name_at(body, i, names, expect)
            expect = ""
            if site is not None:
                sites.append((i, *site))
                i += len(site[0])
                continue
        if char in "'\"":
            end = _string_end(body, i)
            if end is None:
                return []
            i = end
            continue
        if char in "([{":
            if char == "(" and depth == top:
                expect = "arg"
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return []
        elif char == ",":
            expect = "call" if depth == top else "arg" if depth == top + 1 else ""
        i += 1
    return sites


def _name_at(body: str, i: int, names: tuple[str, ...], kind: str) -> tuple[str, bool] | None:
    if kind == "arg":
        return next(
            ((name, True) for name in names if body.startswith(name, i) and _ASSIGN_RE.match(body, i + len(name))), None
        )
    # A call's parenthesis must open like arguments (`)`, `name=`, a literal for an offered name): prose such
    # as "SEC Filings (the documents companies file) are…" or "I cannot help (sorry)" stays prose.
    for name in names:
        paren = _OPEN_PAREN_RE.match(body, i + len(name)) if body.startswith(name, i) else None
        if paren and _opens_arguments(body, paren.end(), names, literal=True):
            return name, True
    loose = _LOOSE_NAME_RE.match(body, i)
    if loose and not is_python_name(loose.group()):
        paren = _OPEN_PAREN_RE.match(body, loose.end())
        if _opens_arguments(body, paren.end(), names, literal=False):
            return loose.group(), False
    return None


def _opens_arguments(body: str, i: int, names: tuple[str, ...], literal: bool) -> bool:
    """Whether the text after a call's `(` reads as arguments: `)`, `name=` (a Python name or an offered
    one), or — when `literal` — a value (a positional argument, which the call then ignores)."""
    if _ARGS_START_RE.match(body, i) or (literal and _LITERAL_START_RE.match(body, i)):
        return True
    i = _SPACES_RE.match(body, i).end()
    return any(body.startswith(name, i) and _ASSIGN_RE.match(body, i + len(name)) for name in names)


def _string_end(body: str, i: int) -> int | None:
    """Where the string literal opening at `i` ends (just past its closing quote); None if it never does."""
    quote = body[i] * 3 if body.startswith(body[i] * 3, i) else body[i]
    j = i + len(quote)
    while j < len(body):
        if body[j] == "\\":
            j += 2
        elif body.startswith(quote, j):
            return j + len(quote)
        elif body[j] == "\n" and len(quote) == 1:
            return None
        else:
            j += 1
    return None


def _placeholders(length: int) -> Iterator[str]:
    """Python names of exactly `length` characters: `_0__`, `_1__`, … (single letters for length 1)."""
    if length == 1:
        yield from "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
        return
    for k in count():
        tag = ""
        while True:
            k, digit = divmod(k, 36)
            tag = _BASE36[digit] + tag
            if not k:
                break
        if len(tag) + 1 > length:
            return
        yield ("_" + tag).ljust(length, "_")
