"""Tool calls written as a Python call list (ToolACE / BFCL): `[f(a=1), m.g(b="x")]` or a bare `f(a=1)`."""

from __future__ import annotations

import ast
import operator
import warnings

from .calls import CallSyntaxError, ParsedCall, Span
from .scanner import _fast_calls

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
