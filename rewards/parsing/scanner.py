"""The fast path for plain Python call lists: a small scanner for `[f(a='x', b=2), g(c=True)]`."""

from __future__ import annotations

import re
from keyword import iskeyword

from .calls import ParsedCall

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
