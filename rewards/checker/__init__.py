"""The verifiable checker: a model's raw answer against BFCL-style possible answers, as a Verdict.

The rules follow BFCL's AST checker so that verdicts agree with it (measured in
tests/rewards/test_bfcl_agreement.py): exact function name; required parameters present; no
parameter outside the schema or the answer; Python type rules (an int is accepted for a float, a tuple
for a tuple-typed list, one level of element types checked); strings compared after BFCL's
normalisation (case, spaces and `,./-_*^` ignored); parallel calls matched in any order, greedily, as
BFCL does; `""` among acceptable values marks a parameter that may be left out; `[]` means no call is
right. Tool and parameter names that are no Python name (ToolACE's `Market Trends API`, `from`) are read
where they match an offered tool's (see parsing/tool_names.py). On top, each failure is named (a Deficiency),
explained, located in the raw text, and graded.

Two rules for a malformed call attempt where no call is right (`rule=`): "strict" (the default; search,
selection, GRPO and the headline pass@1) scores it `malformed` as on any other query; "bfcl" follows BFCL's
lenient irrelevance rule, under which any output that does not decode as a call — a broken attempt included —
is a right "no call" (BFCL-compatible evaluation only: as a reward it pays the policy for broken calls).
"""

from __future__ import annotations

from ..deficiency import Deficiency as D
from ..parsing import ParseResult, call_names, names_in_tools, parse_output
from .expected import _answers, _ExpectedCall, _schemas, standardize
from .matching import _match
from .verdict import (
    GRADE_BY_DEFICIENCY,
    GRADE_WEIGHTS,
    REWARD_BY_DEFICIENCY,
    REWARD_PARTIAL_MAX,
    Verdict,
    _Failure,
    _verdict,
)

__all__ = [
    "BFCL",
    "GRADE_BY_DEFICIENCY",
    "GRADE_WEIGHTS",
    "REWARD_BY_DEFICIENCY",
    "REWARD_PARTIAL_MAX",
    "RULES",
    "STRICT",
    "Checker",
    "Verdict",
    "check",
    "standardize",
]

STRICT, BFCL = "strict", "bfcl"
RULES = (STRICT, BFCL)  # how a malformed attempt on a no-call query is scored (see the module docstring)


class Checker:
    """One query's ground truth and tools, prepared once, then called on each output (a search scores
    many leaves of one query). `rule` ("strict" or "bfcl") is the default rule of its verdicts; a call may
    ask for the other (evaluation reports both from one checker)."""

    def __init__(self, ground_truth, tools, *, rule: str = STRICT):
        self.rule = _rule(rule)
        self.error: _Failure | None = None
        self.expected: list[_ExpectedCall] = []
        # offered names that are no Python name (ToolACE's `Market Trends API`, a parameter named `from`)
        self.call_names: tuple[str, ...] = ()
        try:
            schemas = _schemas(tools)
            self.call_names = call_names(names_in_tools(schemas))
            self.expected = [_ExpectedCall.prepare(name, params, schemas) for name, params in _answers(ground_truth)]
        except _Failure as exc:
            self.error = exc

    @property
    def expects_call(self) -> bool:
        """Whether the ground truth has calls (False for "no call is right", and for unusable inputs)."""
        return bool(self.expected)

    def __call__(self, output, *, rule: str | None = None) -> Verdict:
        if self.error is not None:
            return _verdict(self.error.deficiency, self.error.detail, None, [])
        return self.check_parsed(parse_output(output, self.call_names), rule=rule)

    def check_parsed(self, parsed: ParseResult, *, rule: str | None = None) -> Verdict:
        calls = parsed.calls
        rule = self.rule if rule is None else _rule(rule)
        if not self.expected:  # no call is right
            if parsed.status == "calls" and calls:
                names = ", ".join(c.name for c in calls)
                return _verdict(D.CALL_ON_IRRELEVANT, f"no call was expected, got {names}", calls[0].span, calls)
            if parsed.status == "malformed" and rule == STRICT:
                return _verdict(
                    D.MALFORMED, f"malformed tool call where no call was expected: {parsed.error}", parsed.span, calls
                )
            return _verdict(D.NONE, "no call, as expected", None, calls)
        if parsed.status == "malformed":
            return _verdict(D.MALFORMED, f"malformed tool call: {parsed.error}", parsed.span, calls)
        if parsed.status == "no_call" or not calls:
            names = ", ".join(e.name for e in self.expected)
            return _verdict(D.NO_CALL, f"no tool call; expected {names}", None, calls)
        try:
            _match(calls, self.expected)
        except _Failure as exc:
            return _verdict(exc.deficiency, exc.detail, exc.span, calls, exc.matched)
        return _verdict(D.NONE, "all calls right", None, calls)


def check(output, ground_truth, tools, *, rule: str = STRICT) -> Verdict:
    """Score `output` (raw text or a structured message) against `ground_truth` with `tools` offered.

    Never raises on data: unusable inputs give a `bad_input` verdict (an unknown `rule` is a ValueError).
    """
    return Checker(ground_truth, tools, rule=rule)(output)


def _rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown checker rule {rule!r}: expected one of {', '.join(RULES)}")
    return rule
