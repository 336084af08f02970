"""What the checker answers: a Verdict, with its reward and iTool grade by what went wrong (the Deficiency)."""

from __future__ import annotations

from ..deficiency import Deficiency as D
from ..parsing import ParsedCall, Span

# Graded reward of a failed answer, by what went wrong (a right answer scores 1.0). Calls that are
# right in a multi-call answer earn part of the way up to REWARD_PARTIAL_MAX.
REWARD_BY_DEFICIENCY = {
    D.NO_CALL: -1.0,
    D.MALFORMED: -1.0,
    D.CALL_ON_IRRELEVANT: -1.0,
    D.WRONG_FUNCTION: -0.6,
    D.MISSING_CALL: -0.3,
    D.EXTRA_CALL: -0.3,
    D.MISSING_PARAM: -0.2,
    D.UNEXPECTED_PARAM: -0.2,
    D.WRONG_TYPE: 0.0,
    D.WRONG_VALUE: 0.2,
    D.BAD_INPUT: 0.0,
}
REWARD_PARTIAL_MAX = 0.9

# iTool's four-level judgement over function name, parameter count, names and values/types, and the
# weights its MCTS gives each level (iTool: A/B/C/D = 1.0 / 0.1 / -1 / -2, divided by 4).
GRADE_BY_DEFICIENCY = {
    D.NONE: "excellent",
    D.WRONG_VALUE: "acceptable",
    D.WRONG_TYPE: "acceptable",
    D.MISSING_PARAM: "fair",
    D.UNEXPECTED_PARAM: "fair",
    D.MISSING_CALL: "fair",
    D.EXTRA_CALL: "fair",
    D.WRONG_FUNCTION: "poor",
    D.NO_CALL: "poor",
    D.MALFORMED: "poor",
    D.CALL_ON_IRRELEVANT: "poor",
    D.BAD_INPUT: "poor",
}
GRADE_WEIGHTS = {"excellent": 1.0 / 4, "acceptable": 0.1 / 4, "fair": -1.0 / 4, "poor": -2.0 / 4}


class Verdict:
    """The checker's answer: never an exception. `calls` (JSON form) is built only when read."""

    __slots__ = ("valid", "deficiency", "detail", "span", "reward", "grade", "_calls", "_parsed")

    def __init__(
        self,
        valid: bool,
        deficiency: str,
        detail: str,
        span: Span | None = None,
        calls=None,
        reward: float = 0.0,
        grade: str = "",
        parsed: list[ParsedCall] | None = None,
    ):
        self.valid, self.deficiency, self.detail, self.span = valid, deficiency, detail, span
        self.reward, self.grade = reward, grade
        self._calls, self._parsed = calls, parsed

    @property
    def calls(self) -> list[dict]:
        if self._calls is None:
            self._calls = [c.as_json() for c in self._parsed or []]
        return self._calls

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "deficiency": self.deficiency,
            "detail": self.detail,
            "span": list(self.span) if self.span else None,
            "calls": self.calls,
            "reward": self.reward,
            "grade": self.grade,
        }

    def __repr__(self) -> str:
        return f"Verdict(valid={self.valid}, deficiency={self.deficiency!r}, reward={self.reward})"


class _Failure(Exception):
    def __init__(self, deficiency: D, detail: str, span: Span | None = None, matched: float = 0.0):
        super().__init__(detail)
        self.deficiency, self.detail, self.span = deficiency, detail, span
        self.matched = matched  # share of expected calls that were right (partial credit)


def _verdict(deficiency: D, detail: str, span, parsed: list[ParsedCall], matched: float = 0.0) -> Verdict:
    if deficiency is D.NONE:
        return Verdict(True, "", detail, None, None, 1.0, GRADE_BY_DEFICIENCY[D.NONE], parsed)
    base = REWARD_BY_DEFICIENCY[deficiency]
    reward = base + (REWARD_PARTIAL_MAX - base) * matched if base > -1 else base
    return Verdict(
        False, deficiency.value, detail, span, None, round(reward, 4), GRADE_BY_DEFICIENCY[deficiency], parsed
    )
