"""Request body parsing: JSON whose text the database can store."""
from rest_framework import parsers
from rest_framework.exceptions import ParseError


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
    """DRF's strict JSON parser (no NaN), also refusing strings with lone surrogates: 400, not a database error."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        bad = _unencodable(data)
        if bad is not None:
            raise ParseError(f"JSON parse error - a string is not valid Unicode (lone surrogate): {bad[:40]!r}")
        return data
