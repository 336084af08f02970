"""Tool calls written as JSON: `{"name", "arguments"}` objects and lists of them, OpenAI `tool_calls`, and
`<tool_call>` tags holding JSON, each call with the span it stands at."""

from __future__ import annotations

import json
import re

from .calls import CallSyntaxError, ParsedCall, Span

_TAG_RE = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)


def _json_call(obj, span: Span, where: str) -> ParsedCall:
    """{"name", "arguments"|"parameters"} or OpenAI {"function": {...}}; arguments may be a JSON string."""
    if not isinstance(obj, dict):
        raise CallSyntaxError(f"{where}: expected an object with a name, got {type(obj).__name__}", span)
    fn = obj["function"] if isinstance(obj.get("function"), dict) else obj
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise CallSyntaxError(f"{where}: no function name", span)
    args = fn.get("arguments", fn.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise CallSyntaxError(f"{where}: arguments are not valid JSON ({exc.msg})", span) from None
    if not isinstance(args, dict):
        raise CallSyntaxError(f"{where}: arguments must be an object, got {type(args).__name__}", span)
    return ParsedCall(name, args, span, {})


def _parse_json(body: str, offset: int) -> tuple[list[ParsedCall], str]:
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        pos = offset + exc.pos
        raise CallSyntaxError(f"invalid JSON: {exc.msg} at character {exc.pos}", (pos, pos + 1)) from None
    span = (offset, offset + len(body))
    if isinstance(value, dict) and "tool_calls" in value:
        tool_calls = value["tool_calls"] or []
        if not isinstance(tool_calls, list):
            raise CallSyntaxError("tool_calls must be a list", span)
        calls = [_json_call(c, span, f"tool_calls[{i}]") for i, c in enumerate(tool_calls)]
        fmt = "openai"
    elif isinstance(value, dict):
        calls, fmt = [_json_call(value, span, "call")], "json"
    else:
        calls, fmt = [_json_call(c, span, f"[{i}]") for i, c in enumerate(value)], "json"
    cursor = 0  # calls are found in order, so two calls of one function get their own spans
    for call in calls:
        needle = json.dumps(call.name, ensure_ascii=False)
        at = body.find(needle, cursor)
        if at >= 0:
            call.span = (offset + at, offset + at + len(needle))
            call.arg_spans = _json_arg_spans(body, offset, call, at)
            cursor = at + len(needle)
        else:
            call.span = span
    return calls, fmt


def _json_arg_spans(body: str, offset: int, call: ParsedCall, start: int = 0) -> dict[str, Span]:
    """Where each argument ("key": value) stands, searching `body` from `start`."""
    spans = {}
    for key, value in call.arguments.items():
        needle = json.dumps(key, ensure_ascii=False)
        at = body.find(needle, start)
        if at >= 0:
            val_text = json.dumps(value, ensure_ascii=False)
            vat = body.find(val_text, at + len(needle))
            end = vat + len(val_text) if vat >= 0 else at + len(needle)
            spans[key] = (offset + at, offset + end)
    return spans


def _parse_tags(text: str) -> list[ParsedCall]:
    calls = []
    for i, match in enumerate(_TAG_RE.finditer(text)):
        if not match.group(2):
            raise CallSyntaxError(f"<tool_call> #{i + 1} is not closed", (match.start(), len(text)))
        inner = match.group(1)
        lead = len(inner) - len(inner.lstrip())
        offset = match.start(1) + lead
        body = inner.strip()
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise CallSyntaxError(
                f"<tool_call> #{i + 1}: invalid JSON ({exc.msg})", (offset + exc.pos, offset + exc.pos + 1)
            ) from None
        call = _json_call(value, (match.start(), match.end()), f"<tool_call> #{i + 1}")
        call.arg_spans = _json_arg_spans(body, offset, call)
        calls.append(call)
    return calls
