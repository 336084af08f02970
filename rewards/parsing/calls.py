"""The parser's results: a call found in the text (`ParsedCall`), the verdict on a whole text (`ParseResult`),
the error for text shaped like a call that is not one, and values in the form JSON carries them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Span = tuple[int, int]


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
