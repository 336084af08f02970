"""The verifiable checker: a model's raw answer against BFCL-style possible answers, as a Verdict.

The rules follow BFCL's AST checker so that verdicts agree with it (measured in
tests/rewards/test_bfcl_agreement.py): exact function name; required parameters present; no
parameter outside the schema or the answer; Python type rules (an int is accepted for a float, a tuple
for a tuple-typed list, one level of element types checked); strings compared after BFCL's
normalisation (case, spaces and `,./-_*^` ignored); parallel calls matched in any order, greedily, as
BFCL does; `""` among acceptable values marks a parameter that may be left out; `[]` means no call is
right. Tool and parameter names that are no Python name (ToolACE's `Market Trends API`, `from`) are read
where they match an offered tool's (see parsing.py). On top, each failure is named (a Deficiency), explained,
located in the raw text, and graded.

Two rules for a malformed call attempt where no call is right (`rule=`): "strict" (the default; search,
selection, GRPO and the headline pass@1) scores it `malformed` as on any other query; "bfcl" follows BFCL's
lenient irrelevance rule, under which any output that does not decode as a call — a broken attempt included —
is a right "no call" (BFCL-compatible evaluation only: as a reward it pays the policy for broken calls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rewards.schema import SchemaError, tool_from_any

from .deficiency import Deficiency as D
from .parsing import ParsedCall, ParseResult, Span, call_names, names_in_tools, parse_output

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

STRICT, BFCL = "strict", "bfcl"
RULES = (STRICT, BFCL)  # how a malformed attempt on a no-call query is scored (see the module docstring)

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

# JSON schema types as BFCL's Python type names; the checker applies BFCL's rules per name.
_BFCL_TYPE = {
    "string": "string",
    "integer": "integer",
    "number": "float",
    "boolean": "boolean",
    "array": "array",
    "object": "dict",
}
_PY_TYPE = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_STRIP_RE = re.compile(r"[ ,./\-_*^]")


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


def _verdict(deficiency: D, detail: str, span, parsed: list[ParsedCall], matched: float = 0.0) -> Verdict:
    if deficiency is D.NONE:
        return Verdict(True, "", detail, None, None, 1.0, GRADE_BY_DEFICIENCY[D.NONE], parsed)
    base = REWARD_BY_DEFICIENCY[deficiency]
    reward = base + (REWARD_PARTIAL_MAX - base) * matched if base > -1 else base
    return Verdict(
        False, deficiency.value, detail, span, None, round(reward, 4), GRADE_BY_DEFICIENCY[deficiency], parsed
    )


# --- inputs ---------------------------------------------------------------------------------------


def _schemas(tools) -> dict[str, dict]:
    if not isinstance(tools, list):
        raise _Failure(D.BAD_INPUT, f"tools: expected a list, got {type(tools).__name__}")
    schemas = {}
    for i, tool in enumerate(tools):
        try:
            name, _, params = tool_from_any(tool, f"tools[{i}]")
        except SchemaError as exc:
            raise _Failure(D.BAD_INPUT, str(exc)) from None
        schemas[name] = params
    return schemas


def _answers(ground_truth) -> list[tuple[str, dict]]:
    if not isinstance(ground_truth, list):
        raise _Failure(
            D.BAD_INPUT, f"ground_truth: expected a list of possible answers, got {type(ground_truth).__name__}"
        )
    answers = []
    for i, entry in enumerate(ground_truth):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise _Failure(D.BAD_INPUT, f'ground_truth[{i}]: expected {{"function": {{"param": [values]}}}}')
        ((name, params),) = entry.items()
        if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
            raise _Failure(D.BAD_INPUT, f"ground_truth[{i}].{name}: expected param → list of acceptable values")
        answers.append((name, params))
    return answers


# --- what is expected, prepared once per query ------------------------------------------------------


@dataclass
class _ExpectedParam:
    acceptable: list
    kind: str | None  # BFCL type name
    expected_type: type | None
    nested_type: type | None
    answer_type: type | None  # type of the first acceptable value other than ""
    strings: frozenset  # acceptable strings, standardised
    lists: list  # acceptable lists, elements standardised ("" adds the empty list)

    @classmethod
    def prepare(cls, acceptable: list, prop: dict) -> _ExpectedParam:
        kind = _kind(prop)
        nested = None
        if kind in ("array", "tuple") and isinstance(prop.get("items"), dict):
            nested = _PY_TYPE.get(_kind(prop["items"]))
        lists = [[_std(v) for v in a] for a in acceptable if isinstance(a, (list, tuple))]
        if "" in acceptable:
            lists.append([])  # BFCL reads "" (may be omitted) as an empty list too
        return cls(
            acceptable,
            kind,
            _PY_TYPE.get(kind),
            nested,
            _first_type(acceptable),
            frozenset(standardize(a) for a in acceptable if isinstance(a, str)),
            lists,
        )


@dataclass
class _ExpectedCall:
    name: str
    params: dict[str, _ExpectedParam]  # the answer's parameters that the schema has
    answer: dict  # param → acceptable values, as given
    properties: frozenset
    required: list

    @classmethod
    def prepare(cls, name: str, answer: dict, schemas: dict[str, dict]) -> _ExpectedCall:
        if name not in schemas:
            raise _Failure(D.BAD_INPUT, f"ground truth names {name!r}, which is not among the tools")
        schema = schemas[name]
        props = schema.get("properties", {})
        params = {p: _ExpectedParam.prepare(values, props[p]) for p, values in answer.items() if p in props}
        return cls(name, params, answer, frozenset(props), list(schema.get("required", [])))


# --- matching calls to answers --------------------------------------------------------------------


def _match(calls: list[ParsedCall], expected: list[_ExpectedCall]) -> None:
    if len(calls) != len(expected):
        names = [e.name for e in expected]
        got = [c.name for c in calls]
        message = f"expected {len(expected)} calls ({', '.join(names)}), got {len(calls)} ({', '.join(got)})"
        if len(calls) < len(expected):
            raise _Failure(D.MISSING_CALL, message, calls[-1].span)
        extra = next((c for c in calls if c.name not in names), calls[-1])
        raise _Failure(D.EXTRA_CALL, message, extra.span)
    if len(expected) == 1:
        _check_call(calls[0], expected[0])
        return
    # Parallel calls in any order, matched greedily in answer order, as BFCL does. The first expected
    # call left unmatched is the verdict; matching goes on only to count the right calls.
    unmatched = list(range(len(calls)))
    first_failure = None
    matched = 0
    for want in expected:
        failures = []
        for index in unmatched:
            try:
                _check_call(calls[index], want)
            except _Failure as exc:
                failures.append((calls[index].name == want.name, exc))
            else:
                unmatched.remove(index)
                matched += 1
                break
        else:
            if first_failure is None:
                same_name = [exc for named, exc in failures if named]
                if same_name:
                    first_failure = same_name[0]
                else:
                    first = failures[0][1]
                    first_failure = _Failure(
                        D.WRONG_FUNCTION, f"no call matches {want.name}: {first.detail}", first.span
                    )
    if first_failure is not None:
        first_failure.matched = matched / len(expected)
        raise first_failure


# --- one call against one answer (BFCL's simple function check) -------------------------------------


def _check_call(call: ParsedCall, want: _ExpectedCall) -> None:
    name = want.name
    if call.name != name:
        raise _Failure(D.WRONG_FUNCTION, f"called {call.name!r}, expected {name!r}", call.span)
    args = call.arguments
    for param in want.required:
        if param not in args:
            raise _Failure(D.MISSING_PARAM, f"{name}: required param {param!r} is missing", call.span)
    for param, value in args.items():
        expected = want.params.get(param)
        if expected is None:  # not in the schema, or not in the answer
            raise _Failure(D.UNEXPECTED_PARAM, f"{name}: unexpected param {param!r}", call.arg_span(param))
        _check_value(call, name, param, value, expected)
    for param, acceptable in want.answer.items():
        if param not in args and "" not in acceptable:
            raise _Failure(
                D.MISSING_PARAM, f"{name}: param {param!r} is missing (expected one of {acceptable})", call.span
            )


def _kind(prop: dict) -> str | None:
    """BFCL's type name for a property's schema; None when untyped."""
    if "x-bfcl-type" in prop:
        return prop["x-bfcl-type"]
    kind = prop.get("type")
    return _BFCL_TYPE.get(kind) if isinstance(kind, str) else None


def _check_value(call: ParsedCall, name: str, param: str, value, want: _ExpectedParam) -> None:
    kind, expected_type = want.kind, want.expected_type
    if kind == "tuple" and type(value) is tuple:
        value = list(value)
    elif kind == "float" and type(value) is int:
        value = float(value)
    is_variable = False
    if expected_type is not None:
        ok, is_variable = _type_ok(value, want.acceptable, expected_type, want.nested_type, want.answer_type)
        if not ok:
            raise _Failure(
                D.WRONG_TYPE,
                f"{name}: param {param!r} should be {kind}, got {type(value).__name__} {_short(value)}",
                call.arg_span(param),
            )
    effective = expected_type if expected_type is not None else type(value)
    if is_variable:
        ok = _contains(want.acceptable, value)
    elif effective is str:
        ok = type(value) is str and standardize(value) in want.strings
    elif effective is dict:
        ok = _dict_ok(value, want.acceptable)
    elif effective is list and want.nested_type is dict:
        ok = _list_of_dicts_ok(value, want.acceptable)
    elif effective is list:
        ok = _contains(want.lists, [_std(v) for v in value])
    else:
        ok = _contains(want.acceptable, value)
    if not ok:
        shown = [a for a in want.acceptable if a != ""]
        raise _Failure(
            D.WRONG_VALUE,
            f"{name}: param {param!r}: got {_short(value)}, expected one of {shown}",
            call.arg_span(param),
        )


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _contains(acceptable: list, value) -> bool:
    try:
        return value in acceptable
    except Exception:  # noqa: BLE001 — exotic values compare as unequal
        return False


def _first_type(acceptable: list):
    """The type of the first acceptable value other than "" (the optional marker), as BFCL reads it."""
    for item in acceptable:
        if item != "":
            return type(item)
    return None


def _type_ok(value, acceptable: list, expected_type, nested_type, answer_type) -> tuple[bool, bool]:
    """(type is right, value is a 'variable'): BFCL lets a value whose type matches the answer's own
    type stand in (e.g. a variable name written as a string where a number is expected)."""
    is_variable = answer_type is not None and answer_type is not expected_type
    if type(value) is expected_type:
        if nested_type is None:
            return True, is_variable
        for item in acceptable:
            if not isinstance(item, list) or all(
                _type_ok(v, item, nested_type, None, _first_type(item))[0] for v in value
            ):
                return True, is_variable
        return False, is_variable
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, is_variable


def standardize(text: str) -> str:
    """BFCL's string normalisation: no spaces or `,./-_*^`, lower case, single quotes as double."""
    return _STRIP_RE.sub("", text).lower().replace("'", '"')


def _std(value):
    return standardize(value) if isinstance(value, str) else value


def _dict_ok(value: dict, acceptable: list) -> bool:
    for option in acceptable:
        if option == "" or not isinstance(option, dict):
            continue
        keys_ok = all(k in option for k in value)
        values_ok = keys_ok and all(
            _contains([_std(a) for a in option[k]] if isinstance(option[k], list) else [], _std(v))
            for k, v in value.items()
        )
        missing = any(
            k not in value and "" not in (vals if isinstance(vals, list) else []) for k, vals in option.items()
        )
        if keys_ok and values_ok and not missing:
            return True
    return False


def _list_of_dicts_ok(value: list, acceptable: list) -> bool:
    for option in acceptable:
        if isinstance(option, list) and len(option) == len(value):
            if all(isinstance(v, dict) and _dict_ok(v, [o]) for v, o in zip(value, option)):
                return True
    return False
