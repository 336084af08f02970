"""Python call-list syntax `[f(a=1), m.g(b="x")]` (ToolACE, BFCL): parse to calls, and render back."""
from __future__ import annotations

import ast


class CallSyntaxError(ValueError):
    """Text shaped like a call list that is not one."""


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    raise CallSyntaxError(f"not a function name: {ast.unparse(node)}")


def _call(node: ast.expr) -> dict:
    if not isinstance(node, ast.Call):
        raise CallSyntaxError(f"not a call: {ast.unparse(node)}")
    if node.args:
        raise CallSyntaxError(f"positional arguments in {ast.unparse(node)}; only keyword arguments are allowed")
    arguments = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise CallSyntaxError(f"**kwargs in {ast.unparse(node)}")
        try:
            arguments[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise CallSyntaxError(f"argument {kw.arg!r} is not a literal: {ast.unparse(kw.value)}") from None
    return {"name": _name(node.func), "arguments": _jsonable(arguments)}


def _jsonable(value):
    """Tuples become lists and sets sorted lists, as JSON has them."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=repr)
    return value


def parse_call_list(text: str) -> list[dict] | None:
    """[{"name", "arguments"}] for text of the form `[f(a=1), g()]` (a bare `f(a=1)` too).

    None when the text is not shaped like a call (prose); CallSyntaxError when it is shaped like one
    but is not valid (unbalanced, positional arguments, non-literal values).
    """
    stripped = text.strip()
    looks_like_calls = stripped.startswith("[") and "(" in stripped
    try:
        tree = ast.parse(stripped, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        if looks_like_calls:
            raise CallSyntaxError("unbalanced or invalid call list") from None
        return None
    body = tree.body
    if isinstance(body, ast.Call):
        return [_call(body)]
    if isinstance(body, ast.List) and body.elts and all(isinstance(e, ast.Call) for e in body.elts):
        return [_call(e) for e in body.elts]
    if isinstance(body, ast.List) and any(isinstance(e, ast.Call) for e in body.elts):
        raise CallSyntaxError("a list mixing calls and other values")
    return None


def render_call_list(calls: list[dict]) -> str:
    """The inverse of parse_call_list: `[f(a=1), g(b='x')]`."""
    parts = [f"{c['name']}({', '.join(f'{k}={v!r}' for k, v in c['arguments'].items())})" for c in calls]
    return f"[{', '.join(parts)}]"
