"""Tool calls out of raw model text: Python call lists, JSON objects, <tool_call> tags, OpenAI tool_calls.

Never raises on model output: text that is no call is `no_call`, text shaped like a call that does not
parse is `malformed`, each with a message and the character span at fault. Given the offered tools' names,
Python call lists also read names that are no Python name (ToolACE's `[Market Trends API(from="2024")]`).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import count
from keyword import iskeyword

Span = tuple[int, int]

_TAG_RE = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_CALL_START_RE = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")
# A sentence that only opens like a call: a word, a space, then a parenthesis holding no `=` ("I (the
# assistant) cannot…"). When it does not parse it is prose (no call), not a broken call attempt — which matters
# where a malformed attempt is scored as such on no-call queries (the checker's strict rule).
_PROSE_START_RE = re.compile(r"^[A-Za-z_]\w*\s+\([^)=]*(\)|$)")
_MAX_TEXT = 200_000  # longer outputs are refused rather than parsed (parsing cost is the caller's risk)


class CallSyntaxError(ValueError):
    """Text shaped like a call that is not one; `span` points at the fault when known."""

    def __init__(self, message: str, span: Span | None = None):
        super().__init__(message)
        self.span = span


class ParsedCall:
    """A call found in the text. Where it and its arguments stand is worked out only when asked
    (a verdict needs it for the offending fragment; most leaves never do)."""

    __slots__ = ("name", "arguments", "_span", "_arg_spans", "_locate")

    def __init__(
        self,
        name: str,
        arguments: dict,
        span: Span | None = None,
        arg_spans: dict[str, Span] | None = None,
        locate=None,
    ):
        self.name, self.arguments = name, arguments
        self._span, self._arg_spans, self._locate = span, arg_spans, locate  # locate() -> (span, arg_spans)

    def _resolve(self) -> None:
        span, arg_spans = self._locate() if self._locate else ((0, 0), {})
        self._span = self._span or span
        self._arg_spans = self._arg_spans if self._arg_spans is not None else arg_spans

    @property
    def span(self) -> Span:
        if self._span is None:
            self._resolve()
        return self._span

    @span.setter
    def span(self, value: Span) -> None:
        self._span = value

    @property
    def arg_spans(self) -> dict[str, Span]:
        if self._arg_spans is None:
            self._resolve()
        return self._arg_spans

    @arg_spans.setter
    def arg_spans(self, spans: dict[str, Span]) -> None:
        self._arg_spans = spans

    def arg_span(self, param: str) -> Span:
        """Where an argument stands (the whole call when unknown)."""
        return self.arg_spans.get(param, self.span)

    def as_json(self) -> dict:
        return {"name": self.name, "arguments": jsonable(self.arguments)}

    def rename(self, names: dict[str, str]) -> None:
        """Put back names that were swapped for placeholders to be parsed (the call's and its arguments')."""
        self.name = names.get(self.name, self.name)
        if not any(key in names for key in self.arguments):
            return
        self.arguments = {names.get(key, key): value for key, value in self.arguments.items()}
        if self._arg_spans is not None:
            self._arg_spans = {names.get(key, key): span for key, span in self._arg_spans.items()}
        elif self._locate is not None:
            locate = self._locate

            def renamed():
                span, spans = locate()
                return span, {names.get(key, key): where for key, where in spans.items()}

            self._locate = renamed

    def __repr__(self) -> str:
        return f"ParsedCall({self.name!r}, {self.arguments!r})"


@dataclass
class ParseResult:
    status: str  # "calls" | "no_call" | "malformed"
    calls: list[ParsedCall] = field(default_factory=list)
    format: str = "text"  # python | json | tool_call_tag | openai | text
    error: str = ""
    span: Span | None = None


_PLAIN = (str, int, bool, type(None))


def jsonable(value):
    """Tuples become lists and other non-JSON values strings, as JSON would carry them."""
    if type(value) in _PLAIN:
        return value
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


def parse_output(output, names: Iterable[str] = ()) -> ParseResult:
    """Parse a model's answer: raw text, or an already structured OpenAI message / list of calls.

    `names` are the names the offered tools use, their own and their parameters' (`names_in_tools`): those
    that are no Python name (spaces, `/`, parentheses, keywords such as `from`) are then read where they stand
    in a Python call list (see `_parse_named_calls`); plain names need nothing.
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


# --- Python call lists (ToolACE / BFCL) ----------------------------------------------------------
# Values are resolved the way BFCL's own decoder resolves them, so verdicts agree with its checker:
# a bare name is a variable (kept as its name), a call without keywords is kept as text, a call with
# keywords becomes a nested {name: {args}}, and arithmetic on numbers is evaluated — safely, here.

_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def parse_python_calls(text: str, offset: int = 0, fast: bool = True) -> list[ParsedCall]:
    """Calls from `[f(a=1), m.g(b="x")]` or a bare `f(a=1)`; CallSyntaxError if it is not valid."""
    body = text.strip()
    if len(body) > 1 and body[0] == body[-1] == "'":  # wrapping quotes some models add (BFCL drops them)
        body = body[1:-1].strip()
    offset += text.find(body) if body else 0
    if fast and (calls := _fast_calls(body, offset)) is not None:
        return calls
    pos = _Positions(body, offset)
    try:
        with warnings.catch_warnings():  # a model's text is no source file: "1abc" warns on stderr otherwise
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        at = offset + pos.char(exc.lineno or 1, (exc.offset or 1) - 1, chars=True)
        raise CallSyntaxError(f"not a valid call list: {exc.msg}", (at, at + 1)) from None
    node = tree.body
    elements = [node] if isinstance(node, ast.Call) else getattr(node, "elts", None)
    if not isinstance(node, (ast.Call, ast.List, ast.Tuple)) or elements is None:
        raise CallSyntaxError("expected a call or a list of calls", (offset, offset + len(body)))
    calls = []
    for elem in elements:
        if not isinstance(elem, ast.Call):
            raise CallSyntaxError(f"not a call: {ast.unparse(elem)[:80]}", pos.span(elem))
        keywords = [kw for kw in elem.keywords if kw.arg is not None]
        calls.append(
            ParsedCall(
                _dotted_name(elem.func, pos),
                {kw.arg: _value(kw.value, pos) for kw in keywords},
                locate=lambda elem=elem, keywords=keywords: (
                    pos.span(elem),
                    {kw.arg: pos.span(kw.value) for kw in keywords},
                ),
            )
        )
    return calls


def _dotted_name(node: ast.expr, pos: _Positions) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise CallSyntaxError(f"not a function name: {ast.unparse(node)[:80]}", pos.span(node))
    parts.append(node.id)
    return ".".join(reversed(parts))


def _value(node: ast.expr, pos: _Positions):
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, pos)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
        raise CallSyntaxError(f"cannot negate {ast.unparse(node)[:80]}", pos.span(node))
    if isinstance(node, ast.List):
        return [_value(v, pos) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(v, pos) for v in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise CallSyntaxError("** inside a dict literal", pos.span(node))
        return {_hashable(_value(k, pos), node, pos): _value(v, pos) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):
        return node.id  # a variable: BFCL keeps its name
    if isinstance(node, ast.BinOp):
        return _arith(node, pos)
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        return {
            _dotted_name(node.func, pos): {kw.arg: _value(kw.value, pos) for kw in node.keywords if kw.arg is not None}
        }
    if isinstance(node, (ast.Subscript, ast.Lambda)):
        return ast.unparse(node)
    raise CallSyntaxError(f"unsupported value {ast.unparse(node)[:80]}", pos.span(node))


def _hashable(key, node, pos: _Positions):
    if isinstance(key, (dict, list)):
        raise CallSyntaxError("a dict key must be a plain value", pos.span(node))
    return key


def _arith(node: ast.BinOp, pos: _Positions):
    """Arithmetic on numbers, bounded; anything else is kept as its source text."""
    left, right = _value(node.left, pos), _value(node.right, pos)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    op = _ARITH.get(type(node.op))
    if not numbers or op is None or (op is operator.pow and abs(right) > 64):
        return ast.unparse(node)
    try:
        return op(left, right)
    except (ZeroDivisionError, OverflowError, ValueError):
        return ast.unparse(node)


# The common case — `[f(a='x', b=2), g(c=True)]` with plain literals — is read by a small scanner
# instead of Python's parser (several times faster; the checker runs on every search leaf). Anything
# else (escapes, lists, dicts, expressions, non-ASCII names, a Python keyword as a name) falls back to
# the parser, and tests/rewards/test_parsing.py checks that both read what the scanner accepts alike.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME = rf"{_IDENT}(?:\.{_IDENT})*"
_SCALAR = (
    r"""'[^'\\\n]*'|"[^"\\\n]*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?![0-9A-Za-z_.])"""
    rf"|{_IDENT}(?![0-9A-Za-z_.(\[])"
)  # True / False / None, or a variable's name
_LITERAL = rf"(?:{_SCALAR})|\[\s*+(?:(?:{_SCALAR})(?:\s*+,\s*+(?:{_SCALAR}))*+(?:\s*+,)?+)?+\s*+\]"
# Possessive `\s*+` everywhere: whitespace is never backtracked into, so no input makes these slow.
_ARG = rf"\s*+{_IDENT}\s*+=\s*+(?:{_LITERAL})"
_ARGS = rf"(?:{_ARG}(?:\s*+,{_ARG})*+(?:\s*+,)?+)?+\s*+"
_CALL = rf"\s*+{_NAME}\s*+\({_ARGS}\)\s*+"
_PLAIN_LIST_RE = re.compile(rf"\[{_CALL}(?:,{_CALL})*+,?+\s*+\]|{_CALL}")
_CALL_RE = re.compile(rf"({_NAME})\s*+\(({_ARGS})\)")
_ARG_RE = re.compile(rf"({_IDENT})\s*=\s*({_LITERAL})")
_SCALAR_RE = re.compile(_SCALAR)
_CONSTANTS = {"True": True, "False": False, "None": None}


class _NotPlain(Exception):
    """A token the scanner will not read (a Python keyword where a value goes)."""


def _scalar(token: str):
    first = token[0]
    if first in "'\"":
        return token[1:-1]
    if first == "-" or first.isdigit():
        return float(token) if "." in token else int(token)
    if token in _CONSTANTS:
        return _CONSTANTS[token]
    if iskeyword(token):
        raise _NotPlain(token)
    return token  # a variable: its name, as BFCL keeps it


def _literal(token: str):
    if token[0] == "[":
        return [_scalar(m.group()) for m in _SCALAR_RE.finditer(token, 1, len(token) - 1)]
    return _scalar(token)


def _fast_calls(body: str, offset: int) -> list[ParsedCall] | None:
    """Calls from a plain call list, or None to leave it to Python's parser."""
    if not body.isascii() or not _PLAIN_LIST_RE.fullmatch(body):
        return None
    calls = []
    for call in _CALL_RE.finditer(body):
        name = call.group(1)
        if any(iskeyword(part) for part in name.split(".")):
            return None
        arguments, arg_spans = {}, {}
        base = call.start(2)
        for arg in _ARG_RE.finditer(call.group(2)):
            key = arg.group(1)
            if key in arguments or iskeyword(key):
                return None  # Python refuses these: let its parser say so
            try:
                arguments[key] = _literal(arg.group(2))
            except _NotPlain:
                return None
            arg_spans[key] = (offset + base + arg.start(2), offset + base + arg.end(2))
        calls.append(ParsedCall(name, arguments, (offset + call.start(), offset + call.end()), arg_spans))
    return calls


# --- names that are no Python name (ToolACE) ------------------------------------------------------
# ToolACE keeps its tools' names as their sources wrote them — `Market Trends API`, `products/list`,
# `Detrended Price Oscillator (DPO)`, `Get Agent's Active Listings` — and some parameters are Python keywords
# (`from`, `to`… `from` is one). Python's parser cannot read `[Market Trends API(x=1)]` or `f(from="2024")`, so
# where such a name stands as a call's name or an argument's, it is swapped for a placeholder name of the
# same length (every span stays right), the text is parsed as any call list, and the names are put back.
# The offered names (tools' and parameters') are swapped wherever they stand so; any other run of words
# before `(` at a call's place (a misspelt or invented tool) is swapped too, but then the text must parse,
# or it is read as before (prose, most likely).

_OPEN_PAREN_RE = re.compile(r"\s*+\(")
_ASSIGN_RE = re.compile(r"\s*+=(?!=)")
_ARGS_START_RE = re.compile(r"\s*+(?:\)|[^\W\d]\w*+\s*+=(?!=))")
_LITERAL_START_RE = re.compile(r"""\s*+["'\[{\d-]""")
_SPACES_RE = re.compile(r"\s*+")
_LOOSE_NAME_RE = re.compile(r"""[^\s()\[\]{}=,'"\\]++(?:[ \t]++[^\s()\[\]{}=,'"\\]++)*+(?=\s*+\()""")
_WORD_RE = re.compile(r"\w+")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def is_python_name(name: str) -> bool:
    """A (dotted) name Python's parser reads as a call's name: `f`, `math.factorial`."""
    return all(part.isidentifier() and not iskeyword(part) for part in name.split("."))


def names_in_tools(schemas) -> list[str]:
    """The names offered tools use — their own and their parameters' — from {name: parameters schema}."""
    names = list(schemas)
    for params in schemas.values():
        properties = params.get("properties") if isinstance(params, dict) else None
        if isinstance(properties, dict):
            names.extend(properties)
    return names


@lru_cache(maxsize=1024)
def _exotic(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        sorted({n for n in names if isinstance(n, str) and n and not is_python_name(n)}, key=lambda n: (-len(n), n))
    )


def call_names(names: Iterable[str]) -> tuple[str, ...]:
    """The names that need the swap, longest first (`Market Trends API` is tried before `API`)."""
    names = tuple(names or ())
    return _exotic(names) if names else ()


def _parse_named_calls(body: str, offset: int, names: tuple[str, ...]) -> list[ParsedCall] | None:
    """Calls from a call list whose call or argument names include names that are no Python name; None when
    there are none, or when only unoffered names were swapped and the text still does not parse (then it is
    read as usual). A list naming offered names that does not parse is malformed (CallSyntaxError)."""
    sites = _name_sites(body, names)
    if not sites:
        return None
    taken = set(_WORD_RE.findall(body))  # a placeholder must not read as anything already in the text
    placeholder_of: dict[str, str] = {}
    pieces, last = [], 0
    for start, name, _ in sites:
        if name not in placeholder_of:
            placeholder = next((p for p in _placeholders(len(name)) if p not in taken), None)
            if placeholder is None:
                return None
            taken.add(placeholder)
            placeholder_of[name] = placeholder
        pieces += [body[last:start], placeholder_of[name]]
        last = start + len(name)
    pieces.append(body[last:])
    try:
        calls = parse_python_calls("".join(pieces), offset)
    except CallSyntaxError:
        if any(offered for _, _, offered in sites):
            raise
        return None
    name_of = {placeholder: name for name, placeholder in placeholder_of.items()}
    for call in calls:
        call.rename(name_of)
    return calls


def _name_sites(body: str, names: tuple[str, ...]) -> list[tuple[int, str, bool]]:
    """(start, name, offered) of each name to swap: call names at the call list's top level (after `[` and
    each top-level comma; a bare call at the start) and argument names inside those calls (after `(` and
    each comma). Strings are skipped; text that is no call list (an unclosed string, a stray closing
    bracket) gives none."""
    top = 1 if body.startswith("[") else 0  # bracket depth at which call names stand
    depth, i = top, top
    expect = "call"  # the kind of name that may start here: "call", "arg" or ""
    sites = []
    while i < len(body):
        char = body[i]
        if expect:
            if char.isspace():
                i += 1
                continue
            site = _name_at(body, i, names, expect)
            expect = ""
            if site is not None:
                sites.append((i, *site))
                i += len(site[0])
                continue
        if char in "'\"":
            end = _string_end(body, i)
            if end is None:
                return []
            i = end
            continue
        if char in "([{":
            if char == "(" and depth == top:
                expect = "arg"
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return []
        elif char == ",":
            expect = "call" if depth == top else "arg" if depth == top + 1 else ""
        i += 1
    return sites


def _name_at(body: str, i: int, names: tuple[str, ...], kind: str) -> tuple[str, bool] | None:
    if kind == "arg":
        return next(
            ((name, True) for name in names if body.startswith(name, i) and _ASSIGN_RE.match(body, i + len(name))), None
        )
    # A call's parenthesis must open like arguments (`)`, `name=`, a literal for an offered name): prose such
    # as "SEC Filings (the documents companies file) are…" or "I cannot help (sorry)" stays prose.
    for name in names:
        paren = _OPEN_PAREN_RE.match(body, i + len(name)) if body.startswith(name, i) else None
        if paren and _opens_arguments(body, paren.end(), names, literal=True):
            return name, True
    loose = _LOOSE_NAME_RE.match(body, i)
    if loose and not is_python_name(loose.group()):
        paren = _OPEN_PAREN_RE.match(body, loose.end())
        if _opens_arguments(body, paren.end(), names, literal=False):
            return loose.group(), False
    return None


def _opens_arguments(body: str, i: int, names: tuple[str, ...], literal: bool) -> bool:
    """Whether the text after a call's `(` reads as arguments: `)`, `name=` (a Python name or an offered
    one), or — when `literal` — a value (a positional argument, which the call then ignores)."""
    if _ARGS_START_RE.match(body, i) or (literal and _LITERAL_START_RE.match(body, i)):
        return True
    i = _SPACES_RE.match(body, i).end()
    return any(body.startswith(name, i) and _ASSIGN_RE.match(body, i + len(name)) for name in names)


def _string_end(body: str, i: int) -> int | None:
    """Where the string literal opening at `i` ends (just past its closing quote); None if it never does."""
    quote = body[i] * 3 if body.startswith(body[i] * 3, i) else body[i]
    j = i + len(quote)
    while j < len(body):
        if body[j] == "\\":
            j += 2
        elif body.startswith(quote, j):
            return j + len(quote)
        elif body[j] == "\n" and len(quote) == 1:
            return None
        else:
            j += 1
    return None


def _placeholders(length: int) -> Iterator[str]:
    """Python names of exactly `length` characters: `_0__`, `_1__`, … (single letters for length 1)."""
    if length == 1:
        yield from "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
        return
    for k in count():
        tag = ""
        while True:
            k, digit = divmod(k, 36)
            tag = _BASE36[digit] + tag
            if not k:
                break
        if len(tag) + 1 > length:
            return
        yield ("_" + tag).ljust(length, "_")


class _Positions:
    """Character offsets of ast (line, UTF-8 byte column) positions in one body, computed once."""

    def __init__(self, body: str, offset: int):
        self.body, self.offset = body, offset
        self.simple = body.isascii() and "\n" not in body  # columns are characters already
        if not self.simple:
            self.lines = body.splitlines(keepends=True)
            self.starts = [0]
            for line in self.lines:
                self.starts.append(self.starts[-1] + len(line))

    def char(self, lineno: int, col: int, chars: bool = False) -> int:
        if self.simple:
            return min(col, len(self.body))
        if lineno - 1 >= len(self.lines):
            return len(self.body)
        line = self.lines[lineno - 1]
        within = col if chars or line.isascii() else len(line.encode()[:col].decode(errors="ignore"))
        return min(self.starts[lineno - 1] + within, len(self.body))

    def span(self, node: ast.AST) -> Span:
        start = self.char(node.lineno, node.col_offset)
        end = self.char(node.end_lineno or node.lineno, node.end_col_offset or node.col_offset)
        return self.offset + start, self.offset + end
