"""Tool calls out of raw model text: Python call lists, JSON objects, <tool_call> tags, OpenAI tool_calls.

Never raises on model output: text that is no call is `no_call`, text shaped like a call that does not
parse is `malformed`, each with a message and the character span at fault.
"""
from __future__ import annotations

import ast
import json
import math
import operator
import re
from dataclasses import dataclass, field

Span = tuple[int, int]

_TAG_RE = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_CALL_START_RE = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")
_MAX_TEXT = 200_000  # longer outputs are refused rather than parsed (parsing cost is the caller's risk)


class CallSyntaxError(ValueError):
    """Text shaped like a call that is not one; `span` points at the fault when known."""

    def __init__(self, message: str, span: Span | None = None):
        super().__init__(message)
        self.span = span


@dataclass
class ParsedCall:
    name: str
    arguments: dict
    span: Span  # where the call stands in the raw text
    arg_spans: dict[str, Span] = field(default_factory=dict)  # where each argument's value stands

    def as_json(self) -> dict:
        return {"name": self.name, "arguments": jsonable(self.arguments)}


@dataclass
class ParseResult:
    status: str  # "calls" | "no_call" | "malformed"
    calls: list[ParsedCall] = field(default_factory=list)
    format: str = "text"  # python | json | tool_call_tag | openai | text
    error: str = ""
    span: Span | None = None


def jsonable(value):
    """Tuples become lists and other non-JSON values strings, as JSON would carry them."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value
    return str(value)


def render_call_list(calls: list[dict]) -> str:
    """`[f(a=1), g(b='x')]` from [{"name", "arguments"}]: the Python call-list form."""
    parts = [f"{c['name']}({', '.join(f'{k}={v!r}' for k, v in c['arguments'].items())})" for c in calls]
    return f"[{', '.join(parts)}]"


def parse_output(output) -> ParseResult:
    """Parse a model's answer: raw text, or an already structured OpenAI message / list of calls."""
    if not isinstance(output, str):
        try:
            output = json.dumps(output, ensure_ascii=False)
        except (TypeError, ValueError):
            return ParseResult("malformed", error=f"output of type {type(output).__name__} is not text or JSON")
    if len(output) > _MAX_TEXT:
        return ParseResult("malformed", error=f"output of {len(output)} characters is over {_MAX_TEXT}")
    try:
        return _parse_text(output)
    except CallSyntaxError as exc:
        return ParseResult("malformed", error=str(exc), span=exc.span)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        return ParseResult("malformed", error=f"could not parse: {type(exc).__name__}")


def _parse_text(text: str) -> ParseResult:
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
    if _CALL_START_RE.match(body):
        return ParseResult("calls", parse_python_calls(body, start), format="python")
    return ParseResult("no_call", error="no tool call in the output")


# --- JSON forms ---------------------------------------------------------------------------------


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
    return ParsedCall(name, args, span)


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


# --- Python call lists (ToolACE / BFCL) ----------------------------------------------------------
# Values are resolved the way BFCL's own decoder resolves them, so verdicts agree with its checker:
# a bare name is a variable (kept as its name), a call without keywords is kept as text, a call with
# keywords becomes a nested {name: {args}}, and arithmetic on numbers is evaluated — safely, here.

_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def parse_python_calls(text: str, offset: int = 0) -> list[ParsedCall]:
    """Calls from `[f(a=1), m.g(b="x")]` or a bare `f(a=1)`; CallSyntaxError if it is not valid."""
    body = text.strip()
    if len(body) > 1 and body[0] == body[-1] == "'":  # wrapping quotes some models add (BFCL drops them)
        body = body[1:-1].strip()
    offset += text.find(body) if body else 0
    try:
        tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        pos = _offset_of(body, exc.lineno or 1, (exc.offset or 1) - 1, chars=True)
        raise CallSyntaxError(f"not a valid call list: {exc.msg}", (offset + pos, offset + pos + 1)) from None
    node = tree.body
    elements = [node] if isinstance(node, ast.Call) else getattr(node, "elts", None)
    if not isinstance(node, (ast.Call, ast.List, ast.Tuple)) or elements is None:
        raise CallSyntaxError("expected a call or a list of calls", (offset, offset + len(body)))
    calls = []
    for elem in elements:
        span = _span(body, elem, offset)
        if not isinstance(elem, ast.Call):
            raise CallSyntaxError(f"not a call: {ast.unparse(elem)[:80]}", span)
        calls.append(ParsedCall(
            _dotted_name(elem.func, body, offset),
            {kw.arg: _value(kw.value, body, offset) for kw in elem.keywords if kw.arg is not None},
            span,
            {kw.arg: _span(body, kw.value, offset) for kw in elem.keywords if kw.arg is not None},
        ))
    return calls


def _dotted_name(node: ast.expr, body: str, offset: int) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise CallSyntaxError(f"not a function name: {ast.unparse(node)[:80]}", _span(body, node, offset))
    parts.append(node.id)
    return ".".join(reversed(parts))


def _value(node: ast.expr, body: str, offset: int):
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, body, offset)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
        raise CallSyntaxError(f"cannot negate {ast.unparse(node)[:80]}", _span(body, node, offset))
    if isinstance(node, ast.List):
        return [_value(v, body, offset) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(v, body, offset) for v in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise CallSyntaxError("** inside a dict literal", _span(body, node, offset))
        return {_hashable(_value(k, body, offset), node, body, offset): _value(v, body, offset)
                for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):
        return node.id  # a variable: BFCL keeps its name
    if isinstance(node, ast.BinOp):
        return _arith(node, body, offset)
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        return {_dotted_name(node.func, body, offset): {kw.arg: _value(kw.value, body, offset)
                                                        for kw in node.keywords if kw.arg is not None}}
    if isinstance(node, (ast.Subscript, ast.Lambda)):
        return ast.unparse(node)
    raise CallSyntaxError(f"unsupported value {ast.unparse(node)[:80]}", _span(body, node, offset))


def _hashable(key, node, body, offset):
    if isinstance(key, (dict, list)):
        raise CallSyntaxError("a dict key must be a plain value", _span(body, node, offset))
    return key


def _arith(node: ast.BinOp, body: str, offset: int):
    """Arithmetic on numbers, bounded; anything else is kept as its source text."""
    left, right = _value(node.left, body, offset), _value(node.right, body, offset)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    op = _ARITH.get(type(node.op))
    if not numbers or op is None or (op is operator.pow and abs(right) > 64):
        return ast.unparse(node)
    try:
        return op(left, right)
    except (ZeroDivisionError, OverflowError, ValueError):
        return ast.unparse(node)


def _offset_of(body: str, lineno: int, col: int, chars: bool = False) -> int:
    """Character offset of (line, column); ast columns count UTF-8 bytes unless `chars`."""
    lines = body.splitlines(keepends=True)
    before = sum(len(line) for line in lines[: lineno - 1])
    if chars or lineno - 1 >= len(lines):
        return min(before + col, len(body))
    return before + len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))


def _span(body: str, node: ast.AST, offset: int) -> Span:
    start = _offset_of(body, node.lineno, node.col_offset)
    end = _offset_of(body, node.end_lineno or node.lineno, node.end_col_offset or node.col_offset)
    return offset + start, offset + end
