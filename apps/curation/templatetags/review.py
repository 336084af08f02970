"""Template filters for the review pages: highlighted fragments, JSON shown readable, value colours."""

import json

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def segments_html(segments) -> str:
    """Diff/offending segments as escaped text, marked ones in <span>s (built here: a template loop would
    add whitespace inside the <pre>)."""
    parts = []
    for segment in segments:
        classes = " ".join(name for name, on in (("changed", segment.changed), ("offending", segment.offending)) if on)
        parts.append(
            format_html('<span class="{}">{}</span>', classes, segment.text)
            if classes
            else conditional_escape(segment.text)
        )
    return mark_safe("".join(parts))


@register.filter
def as_json(value) -> str:
    """Indented JSON text (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def value_colour(value) -> str:
    """A node value in [-1, 1] as a colour from red (-1) through yellow to green (1)."""
    try:
        value = max(-1.0, min(1.0, float(value)))
    except (TypeError, ValueError):
        return "hsl(0, 0%, 85%)"
    return f"hsl({round(60 * (value + 1))}, 70%, 80%)"


@register.filter
def percent(part, whole) -> int:
    return round(100 * part / whole) if whole else 0


@register.simple_tag
def verdict_badge(verdict) -> str:
    if not verdict:
        return mark_safe('<span class="badge">no verdict</span>')
    if verdict.get("valid"):
        return mark_safe('<span class="badge ok">valid</span>')
    return format_html('<span class="badge bad">{}</span>', (verdict.get("deficiency") or "invalid").replace("_", " "))


@register.filter
def get_item(mapping, key):
    """mapping[key] in a template (None when missing)."""
    return mapping.get(key) if hasattr(mapping, "get") else None
