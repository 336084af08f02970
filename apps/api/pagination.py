"""Keyset ("cursor") pagination over any ordering that ends with the primary key.

DRF's CursorPagination positions on the first ordering field plus an offset, which breaks down when many rows
share that value (pairs share gaps: its offset is capped at 1,000). Here the cursor holds the full key of the
row at the page's edge — e.g. (gap, id) — and the next page is `WHERE (gap, id) > (g, i)`, served by the
index whatever the depth. Cursors are signed (a client cannot forge values of the wrong type) and name the
ordering they were made for. No total count: counting a million pairs per page is what made the bulk page slow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from django.core import signing
from django.db.models import Q
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

SALT = "apps.api.pagination.cursor"


def _encode(value):
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def _after(ordering: Sequence[str], values: Sequence, reverse: bool) -> Q:
    """Rows strictly after `values` in `ordering` (before them when `reverse`): a lexicographic comparison
    written as (a > x) OR (a = x AND b > y) OR ..., and a plain a ≥ x that an index on a starts its scan from
    (without it, PostgreSQL reads the index from the first row and filters: page n costs n pages)."""
    condition = Q(pk__in=[])  # false
    for i, term in enumerate(ordering):
        name = term.lstrip("-")
        ascending = not term.startswith("-")
        lookup = "gt" if ascending != reverse else "lt"
        step = Q(**{f"{name}__{lookup}": values[i]})
        for prior, value in zip(ordering[:i], values[:i]):
            step &= Q(**{prior.lstrip("-"): value})
        condition |= step
    first = ordering[0]
    bound = "gte" if first.startswith("-") == reverse else "lte"
    return Q(**{f"{first.lstrip('-')}__{bound}": values[0]}) & condition


class KeysetPagination(BasePagination):
    """Pages of `page_size` rows (`?page_size=`, 1 to `max_page_size`), linked by opaque `next` and
    `previous` URLs. The view gives the order with `ordering` (a tuple ending in "id" or "-id") or a
    `pagination_ordering(request)` method."""

    page_size = 50
    max_page_size = 500
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def ordering_for(self, request, view) -> tuple[str, ...]:
        method = getattr(view, "pagination_ordering", None)
        ordering = tuple(method(request) if method else getattr(view, "ordering", None) or ("id",))
        if ordering[-1].lstrip("-") not in ("id", "pk"):
            raise AssertionError(f"{type(view).__name__}: a keyset ordering must end with the id, got {ordering}")
        return ordering

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def _cursor(self, request, ordering) -> tuple[list | None, bool]:
        raw = request.query_params.get(self.cursor_query_param)
        if not raw:
            return None, False
        try:
            data = signing.loads(raw, salt=SALT)
        except signing.BadSignature:
            raise ValidationError(
                {self.cursor_query_param: ["Invalid cursor: use the next or previous link of an earlier page."]}
            ) from None
        if data.get("o") != list(ordering):
            raise ValidationError({self.cursor_query_param: ["This cursor belongs to another ordering."]})
        return data["v"], bool(data.get("r"))

    def _link(self, values: list, reverse: bool) -> str:
        token = signing.dumps({"o": list(self.ordering), "v": values, "r": reverse}, salt=SALT, compress=True)
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def _key(self, row) -> list:
        return [_encode(getattr(row, term.lstrip("-"))) for term in self.ordering]

    def paginate_queryset(self, queryset, request, view=None):
        self.ordering = self.ordering_for(request, view)
        self.base_url = request.build_absolute_uri()
        size = self.get_page_size(request)
        values, reverse = self._cursor(request, self.ordering)
        if values is not None:
            queryset = queryset.filter(_after(self.ordering, values, reverse))
        order = (
            [term[1:] if term.startswith("-") else f"-{term}" for term in self.ordering] if reverse else self.ordering
        )
        rows = list(queryset.order_by(*order)[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        if reverse:
            rows.reverse()
        self.next = self.previous = None
        if rows:
            if more or reverse:  # going back, the rows we came from follow
                self.next = self._link(self._key(rows[-1]), False)
            if (more and reverse) or (values is not None and not reverse):
                self.previous = self._link(self._key(rows[0]), True)
        elif values is not None:  # past an end (rows were deleted meanwhile): offer the first page
            self.previous = remove_query_param(self.base_url, self.cursor_query_param)
        return rows

    def get_paginated_response(self, data):
        return Response({"next": self.next, "previous": self.previous, "results": data})

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The next page, or null on the last one."},
                "previous": {**link, "description": "The previous page, or null on the first one."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from a `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {self.page_size}, at most {self.max_page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]
