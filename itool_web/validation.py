"""Bounds on what people send, one set for the pages and the REST API so that the two never disagree: whole
numbers within the range of the columns they are compared with, and text and JSON a database can store."""

from __future__ import annotations

import math
import re

MAX_ID = 2**63 - 1  # the largest bigint primary key: a larger number is refused, never sent to the database
MAX_VERSION = 2**31 - 1  # PreferencePair.version is a PositiveIntegerField (integer on PostgreSQL)
MAX_FRAGMENT_CHARS = 20_000  # an edited chosen fragment or a review note
MAX_JSON_DEPTH = 64  # nesting of a JSON body; tool schemas nest a dozen levels, Python's parser fails near 1,000

NUL_MESSAGE = "Null characters are not allowed."  # Django's and DRF's own words for it

# ASCII digits only: str.isdigit() also accepts '²' (which int() refuses) and '١٢' (which int() reads as 12).
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")


def parse_whole_number(text, *, minimum: int = 1, maximum: int = MAX_ID) -> int | None:
    """The number `text` spells in ASCII digits when it lies in [minimum, maximum]; None for anything else
    (other scripts, signs, spaces, decimals, thousands of digits)."""
    if not isinstance(text, str) or not _WHOLE_NUMBER.fullmatch(text):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def parse_id(text) -> int | None:
    """A row id (1 … MAX_ID) from URL or form text; None when `text` is not one."""
    return parse_whole_number(text, maximum=MAX_ID)


def parse_version(text) -> int | None:
    """A pair's version (1 … MAX_VERSION) from form text; None when `text` is not one."""
    return parse_whole_number(text, maximum=MAX_VERSION)


class IdConverter:
    """`<id:name>` in URL patterns: a row id, or no match (404) — `<int:…>` passes 10**30 on to the database."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(f"not a row id: {value}")
        return number

    def to_url(self, value) -> str:
        return str(int(value))


def storable_json_error(value, path: str = "", *, depth: int = 0) -> str | None:
    """Why `value` cannot be stored in a JSON column (PostgreSQL refuses NUL characters in jsonb, and JSON has
    no NaN or infinity; nesting is bounded), or None when it can."""
    if depth > MAX_JSON_DEPTH:
        return f"{path or 'value'}: nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        return f"{path or 'value'}: contains a NUL character (\\u0000)" if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'value'}: {value} is not a finite number"
    if isinstance(value, dict):
        for key, item in value.items():
            error = storable_json_error(key, f"{path}[key]", depth=depth + 1) or storable_json_error(
                item, f"{path}.{key}".lstrip("."), depth=depth + 1
            )
            if error:
                return error
    if isinstance(value, list):
        for i, item in enumerate(value):
            if error := storable_json_error(item, f"{path}[{i}]", depth=depth + 1):
                return error
    return None


def json_depth(value) -> int:
    """How deeply `value` nests (a scalar is 0, `[]` and `{}` are 1), found without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
            deepest = max(deepest, depth + 1)
    return deepest
