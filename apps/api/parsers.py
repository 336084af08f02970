"""Request body parsing: JSON whose text the database can store, nested no deeper than the API needs."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from itool_web.validation import MAX_JSON_DEPTH, json_depth

DEPTH_MESSAGE = f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"


def _unencodable(value) -> str | None:
    """The first string in `value` (keys included) that is not valid Unicode text: JSON's `\\ud800` escapes
    can spell lone surrogates, which no UTF-8 database column accepts."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class JSONParser(parsers.JSONParser):
    """DRF's strict JSON parser (no NaN), also refusing strings with lone surrogates and nesting deeper than
    MAX_JSON_DEPTH: 400, not a database error or a RecursionError (500) in the parser or a serializer."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # Python's decoder recurses per level: ~1,000 levels exhaust the stack
            raise ParseError(DEPTH_MESSAGE) from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(DEPTH_MESSAGE)
        bad = _unencodable(data)
        if bad is not None:
            raise ParseError(f"JSON parse error - a string is not valid Unicode (lone surrogate): {bad[:40]!r}")
        return data
