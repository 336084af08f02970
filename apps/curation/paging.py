"""Keyset pages for the bulk view: a page starts after (or ends before) one row's sort key, so page 2,000
costs what page 1 does, and no page needs the number of rows before it (no OFFSET, no COUNT(*))."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

# The sort fields a cursor may hold, and how to read each back from the URL.
CURSOR_FIELDS = {"gap": float, "id": int}
SEPARATOR = "~"


@dataclass(frozen=True)
class KeysetPage:
    rows: list
    next_cursor: str  # "" when this is the last page
    previous_cursor: str  # "" when this is the first page


def _field(name: str) -> str:
    return name.lstrip("-")


def cursor_of(row, order: tuple[str, ...]) -> str:
    """The row's sort key as URL text (floats in repr: they read back to the same float exactly)."""
    return SEPARATOR.join(repr(getattr(row, _field(name))) for name in order)


def parse_cursor(text: str, order: tuple[str, ...]) -> dict | None:
    """{field: value} from `cursor_of`'s text for this order; None when it does not fit it."""
    parts = text.split(SEPARATOR) if text else []
    if len(parts) != len(order):
        return None
    values = {}
    for name, part in zip(order, parts):
        field = _field(name)
        try:
            values[field] = CURSOR_FIELDS[field](part)
        except (KeyError, ValueError):
            return None
        if values[field] != values[field]:  # NaN
            return None
    return values


def _after(order: tuple[str, ...], key: dict) -> Q:
    """Rows after `key` in `order`: (a > x) or (a = x and b > y) …, plus a plain bound on the first field
    that an index on it can start from."""
    later, equal = Q(pk__in=[]), Q()
    for name in order:
        field, op = _field(name), "lt" if name.startswith("-") else "gt"
        later |= equal & Q(**{f"{field}__{op}": key[field]})
        equal &= Q(**{field: key[field]})
    first = order[0]
    bound = Q(**{f"{_field(first)}__{'lte' if first.startswith('-') else 'gte'}": key[_field(first)]})
    return bound & later


def _reversed(order: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name[1:] if name.startswith("-") else f"-{name}" for name in order)


def keyset_page(rows: QuerySet, *, order: tuple[str, ...], size: int, after: str = "", before: str = "") -> KeysetPage:
    """The page of `rows` (unordered) in `order` (unique: end it with the id) starting after the cursor
    `after`, or ending before `before`; the first page without either (or with one that does not parse).
    One query of size + 1 rows."""
    after_key, before_key = parse_cursor(after, order), parse_cursor(before, order)
    if before_key is not None:
        found = list(rows.filter(_after(_reversed(order), before_key)).order_by(*_reversed(order))[: size + 1])
        more_before = len(found) > size
        page = list(reversed(found[:size]))
        return KeysetPage(
            page,
            next_cursor=cursor_of(page[-1], order) if page else "",
            previous_cursor=cursor_of(page[0], order) if page and more_before else "",
        )
    if after_key is not None:
        rows = rows.filter(_after(order, after_key))
    found = list(rows.order_by(*order)[: size + 1])
    page = found[:size]
    return KeysetPage(
        page,
        next_cursor=cursor_of(page[-1], order) if len(found) > size else "",
        previous_cursor=cursor_of(page[0], order) if page and after_key is not None else "",
    )
