"""Display helpers for the admin pages: JSON shown readable, long text shortened."""

import json

from django.utils.html import format_html


def pretty_json(value) -> str:
    """A JSON value as an indented, escaped <pre> block."""
    if value in (None, "", {}, []):
        return "—" if value is None else json.dumps(value)
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    return format_html('<pre style="white-space:pre-wrap;max-width:60em">{}</pre>', text)


def shorten(text: str, width: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"
