"""Tool calls out of raw model text: Python call lists, JSON objects, <tool_call> tags, OpenAI tool_calls.

Never raises on model output: text that is no call is `no_call`, text shaped like a call that does not
parse is `malformed`, each with a message and the character span at fault. Given the offered tools' names,
Python call lists also read names that are no Python name (ToolACE's `[Market Trends API(from="2024")]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from .calls import CallSyntaxError, ParsedCall, ParseResult, Span, jsonable, render_call_list
from .json_forms import _parse_json, _parse_tags
from .python_calls import parse_python_calls
from .tool_names import _parse_named_calls, call_names, is_python_name, names_in_tools

__all__ = [
    "CallSyntaxError",
    "ParseResult",
    "ParsedCall",
    "Span",
    "call_names",
    "is_python_name",
    "jsonable",
    "names_in_tools",
    "parse_output",
    "parse_python_calls",
    "render_call_list",
]

_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_CALL_START_RE = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")
# A sentence that only opens like a call: a word, a space, then a parenthesis holding no `=` ("I (the
# assistant) cannot…"). When it does not parse it is prose (no call), not a broken call attempt — which matters
# where a malformed attempt is scored as such on no-call queries (the checker's strict rule).
_PROSE_START_RE = re.compile(r"^[A-Za-z_]\w*\s+\([^)=]*(\)|$)")
_MAX_TEXT = 200_000  # longer outputs are refused rather than parsed (parsing cost is the caller's risk)


def parse_output(output, names: Iterable[str] = ()) -> ParseResult:
    """Parse a model's answer: raw text, or an already structured OpenAI message / list of calls.

    `names` are the names the offered tools use, their own and their parameters' (`names_in_tools`): those
    that are no Python name (spaces, `/`, parentheses, keywords such as `from`) are then read where they stand
    in a Python call list (see `tool_names.py`); plain names need nothing.
    """
    if not isinstance(output, str):
        try:
            output = json.dumps(output, ensure_ascii=False)
        except (TypeError, ValueError):
            return ParseResult("malformed", error=f"output of type {type(output).__name__} is not text or JSON")
    if len(output) > _MAX_TEXT:
        return ParseResult("malformed", error=f"output of {len(output)} characters is over {_MAX_TEXT}")
    try:
        return _parse_text(output, call_names(names))
    except CallSyntaxError as exc:
        return ParseResult("malformed", error=str(exc), span=exc.span)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        return ParseResult("malformed", error=f"could not parse: {type(exc).__name__}")


def _parse_text(text: str, names: tuple[str, ...] = ()) -> ParseResult:
    if "<tool_call>" in text:
        return ParseResult("calls", _parse_tags(text), format="tool_call_tag")
    start = len(text) - len(text.lstrip())
    body = text.strip()
    fence = _FENCE_RE.match(body)
    if fence:
        start += fence.start(1)
        body = fence.group(1)
        start += len(body) - len(body.lstrip())
        body = body.strip()
    if not body:
        return ParseResult("no_call", error="empty output")
    if body.startswith("{") or re.match(r"^\[\s*\{", body):
        calls, fmt = _parse_json(body, start)
        return ParseResult("calls", calls, format=fmt)
    if names and (calls := _parse_named_calls(body, start, names)) is not None:
        return ParseResult("calls", calls, format="python")
    if _CALL_START_RE.match(body):
        try:
            return ParseResult("calls", parse_python_calls(body, start), format="python")
        except CallSyntaxError:
            if _PROSE_START_RE.match(body):
                return ParseResult("no_call", error="no tool call in the output (prose)")
            raise
    return ParseResult("no_call", error="no tool call in the output")
