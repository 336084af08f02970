"""The verifiable checker: a model's raw answer against BFCL-style possible answers, as a Verdict.

The rules follow BFCL's AST checker so that verdicts agree with it (measured in
tests/apps/rewards/test_bfcl_agreement.py): exact function name; required parameters present; no
parameter outside the schema or the answer; Python type rules (an int is accepted for a float, a tuple
for a tuple-typed list, one level of element types checked); strings compared after BFCL's
normalisation (case, spaces and `,./-_*^` ignored); parallel calls matched in any order, greedily, as
BFCL does; `""` among acceptable values marks a parameter that may be left out; `[]` means no call is
right. On top, each failure is named (a Deficiency), explained, located in the raw text, and graded.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from apps.catalog.schema import SchemaError, tool_from_any

from .deficiency import Deficiency as D
from .parsing import ParsedCall, ParseResult, Span, parse_output

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

# JSON schema types as BFCL's Python type names; the checker applies BFCL's rules per name.
_BFCL_TYPE = {"string": "string", "integer": "integer", "number": "float", "boolean": "boolean",
              "array": "array", "object": "dict"}
_PY_TYPE = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
            "dict": dict, "any": str}
_STRIP_RE = re.compile(r"[ ,./\-_*^]")


@dataclass
class Verdict:
    valid: bool
    deficiency: str
    detail: str
    span: Span | None = None  # the offending fragment in the raw text
    calls: list[dict] = field(default_factory=list)
    reward: float = 0.0
    grade: str = ""

    def as_dict(self) -> dict:
        out = asdict(self)
        out["span"] = list(self.span) if self.span else None
        return out


class _Failure(Exception):
    def __init__(self, deficiency: D, detail: str, span: Span | None = None):
        super().__init__(detail)
        self.deficiency, self.detail, self.span = deficiency, detail, span


def check(output, ground_truth, tools) -> Verdict:
    """Score `output` (raw text or a structured message) against `ground_truth` with `tools` offered.

    Never raises: unusable inputs give a `bad_input` verdict.
    """
    try:
        schemas = _schemas(tools)
        answers = _answers(ground_truth)
    except _Failure as exc:
        return _verdict(exc.deficiency, exc.detail, exc.span, [])
    parsed = parse_output(output)
    return check_parsed(parsed, answers, schemas)


def check_parsed(parsed: ParseResult, answers: list[tuple[str, dict]], schemas: dict[str, dict]) -> Verdict:
    calls_json = [c.as_json() for c in parsed.calls]
    if not answers:  # no call is right
        if parsed.status == "calls" and parsed.calls:
            names = ", ".join(c.name for c in parsed.calls)
            return _verdict(D.CALL_ON_IRRELEVANT, f"no call was expected, got {names}", parsed.calls[0].span,
                            calls_json)
        return _verdict(D.NONE, "no call, as expected", None, calls_json)
    if parsed.status == "malformed":
        return _verdict(D.MALFORMED, f"malformed tool call: {parsed.error}", parsed.span, calls_json)
    if parsed.status == "no_call" or not parsed.calls:
        expected = ", ".join(name for name, _ in answers)
        return _verdict(D.NO_CALL, f"no tool call; expected {expected}", None, calls_json)
    try:
        _match(parsed.calls, answers, schemas)
    except _Failure as exc:
        return _verdict(exc.deficiency, exc.detail, exc.span, calls_json, _matched_fraction(parsed.calls, answers, schemas))
    return _verdict(D.NONE, "all calls right", None, calls_json)


def _verdict(deficiency: D, detail: str, span, calls, matched: float = 0.0) -> Verdict:
    if deficiency is D.NONE:
        return Verdict(True, "", detail, None, calls, 1.0, GRADE_BY_DEFICIENCY[D.NONE])
    base = REWARD_BY_DEFICIENCY[deficiency]
    reward = base + (REWARD_PARTIAL_MAX - base) * matched if base > -1 else base
    return Verdict(False, deficiency.value, detail, span, calls, round(reward, 4), GRADE_BY_DEFICIENCY[deficiency])


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
        raise _Failure(D.BAD_INPUT, f"ground_truth: expected a list of possible answers, got {type(ground_truth).__name__}")
    answers = []
    for i, entry in enumerate(ground_truth):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise _Failure(D.BAD_INPUT, f'ground_truth[{i}]: expected {{"function": {{"param": [values]}}}}')
        (name, params), = entry.items()
        if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
            raise _Failure(D.BAD_INPUT, f"ground_truth[{i}].{name}: expected param → list of acceptable values")
        answers.append((name, params))
    return answers


# --- matching calls to answers --------------------------------------------------------------------


def _match(calls: list[ParsedCall], answers: list[tuple[str, dict]], schemas: dict[str, dict]) -> None:
    if len(calls) != len(answers):
        expected = [name for name, _ in answers]
        got = [c.name for c in calls]
        if len(calls) < len(answers):
            raise _Failure(D.MISSING_CALL, f"expected {len(answers)} calls ({', '.join(expected)}), got {len(calls)} ({', '.join(got)})",
                           calls[-1].span)
        extra = next((c for c in calls if c.name not in expected), calls[-1])
        raise _Failure(D.EXTRA_CALL, f"expected {len(answers)} calls ({', '.join(expected)}), got {len(calls)} ({', '.join(got)})",
                       extra.span)
    if len(answers) == 1:
        name, params = answers[0]
        _check_call(calls[0], name, params, _schema_for(name, schemas))
        return
    # Parallel calls in any order, matched greedily in answer order, as BFCL does.
    unmatched = list(range(len(calls)))
    for name, params in answers:
        schema = _schema_for(name, schemas)
        failures = []
        for index in unmatched:
            try:
                _check_call(calls[index], name, params, schema)
            except _Failure as exc:
                failures.append((calls[index].name == name, exc))
            else:
                unmatched.remove(index)
                break
        else:
            same_name = [exc for named, exc in failures if named]
            best = same_name[0] if same_name else failures[0][1]
            if not same_name:
                best = _Failure(D.WRONG_FUNCTION, f"no call matches {name}: {best.detail}", best.span)
            raise best


def _matched_fraction(calls, answers, schemas) -> float:
    """Share of expected calls that some output call gets fully right (partial credit)."""
    if len(answers) < 2:
        return 0.0
    free = list(calls)
    matched = 0
    for name, params in answers:
        for call in free:
            try:
                _check_call(call, name, params, _schema_for(name, schemas))
            except _Failure:
                continue
            free.remove(call)
            matched += 1
            break
    return matched / max(len(answers), len(calls))


def _schema_for(name: str, schemas: dict[str, dict]) -> dict:
    if name not in schemas:
        raise _Failure(D.BAD_INPUT, f"ground truth names {name!r}, which is not among the tools")
    return schemas[name]


# --- one call against one answer (BFCL's simple function check) -------------------------------------


def _check_call(call: ParsedCall, name: str, answer: dict, schema: dict) -> None:
    if call.name != name:
        raise _Failure(D.WRONG_FUNCTION, f"called {call.name!r}, expected {name!r}", call.span)
    props = schema.get("properties", {})
    for param in schema.get("required", []):
        if param not in call.arguments:
            raise _Failure(D.MISSING_PARAM, f"{name}: required param {param!r} is missing", call.span)
    for param, value in call.arguments.items():
        span = call.arg_spans.get(param, call.span)
        if param not in props or param not in answer:
            raise _Failure(D.UNEXPECTED_PARAM, f"{name}: unexpected param {param!r}", span)
        _check_value(name, param, value, answer[param], props[param], span)
    for param, acceptable in answer.items():
        if param not in call.arguments and "" not in acceptable:
            raise _Failure(D.MISSING_PARAM, f"{name}: param {param!r} is missing (expected one of {acceptable})",
                           call.span)


def _kind(prop: dict) -> str | None:
    """BFCL's type name for a property's schema; None when untyped."""
    if "x-bfcl-type" in prop:
        return prop["x-bfcl-type"]
    kind = prop.get("type")
    return _BFCL_TYPE.get(kind) if isinstance(kind, str) else None


def _check_value(name: str, param: str, value, acceptable: list, prop: dict, span) -> None:
    kind = _kind(prop)
    expected_type = _PY_TYPE.get(kind)
    nested_type = None
    if kind in ("array", "tuple") and isinstance(prop.get("items"), dict):
        nested_type = _PY_TYPE.get(_kind(prop["items"]))
    if kind == "tuple" and type(value) is tuple:
        value = list(value)
    if kind == "float" and type(value) is int:
        value = float(value)
    is_variable = False
    if expected_type is not None:
        ok, is_variable = _type_ok(value, acceptable, expected_type, nested_type)
        if not ok:
            raise _Failure(D.WRONG_TYPE, f"{name}: param {param!r} should be {kind}, got {type(value).__name__} "
                                         f"{_short(value)}", span)
    effective = expected_type if expected_type is not None else type(value)
    if not is_variable:
        if effective is dict:
            return _expect(_dict_ok(value, acceptable), name, param, value, acceptable, span)
        if effective is list and nested_type is dict:
            return _expect(_list_of_dicts_ok(value, acceptable), name, param, value, acceptable, span)
        if effective is str:
            return _expect(_string_ok(value, acceptable), name, param, value, acceptable, span)
        if effective is list:
            return _expect(_list_ok(value, acceptable), name, param, value, acceptable, span)
    _expect(_contains(acceptable, value), name, param, value, acceptable, span)


def _expect(ok: bool, name, param, value, acceptable, span) -> None:
    if not ok:
        shown = [a for a in acceptable if a != ""]
        raise _Failure(D.WRONG_VALUE, f"{name}: param {param!r}: got {_short(value)}, expected one of {shown}", span)


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


def _type_ok(value, acceptable: list, expected_type, nested_type) -> tuple[bool, bool]:
    """(type is right, value is a 'variable'): BFCL lets a value whose type matches the answer's own
    type stand in (e.g. a variable name written as a string where a number is expected)."""
    answer_type = _first_type(acceptable)
    is_variable = answer_type is not None and answer_type is not expected_type
    if type(value) is expected_type:
        if nested_type is None:
            return True, is_variable
        for item in acceptable:
            if not isinstance(item, list) or all(_type_ok(v, item, nested_type, None)[0] for v in value):
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


def _string_ok(value: str, acceptable: list) -> bool:
    return standardize(value) in [standardize(a) for a in acceptable if isinstance(a, str)]


def _list_ok(value: list, acceptable: list) -> bool:
    candidate = [_std(v) for v in value]
    # "" (may be omitted) also accepts an empty list, as BFCL reads it
    options = [[_std(v) for v in a] for a in acceptable if isinstance(a, (list, tuple))]
    if "" in acceptable:
        options.append([])
    return _contains(options, candidate)


def _dict_ok(value: dict, acceptable: list) -> bool:
    for option in acceptable:
        if option == "" or not isinstance(option, dict):
            continue
        keys_ok = all(k in option for k in value)
        values_ok = keys_ok and all(
            _contains([_std(a) for a in option[k]] if isinstance(option[k], list) else [], _std(v))
            for k, v in value.items()
        )
        missing = any(k not in value and "" not in (vals if isinstance(vals, list) else []) for k, vals in option.items())
        if keys_ok and values_ok and not missing:
            return True
    return False


def _list_of_dicts_ok(value: list, acceptable: list) -> bool:
    for option in acceptable:
        if isinstance(option, list) and len(option) == len(value):
            if all(isinstance(v, dict) and _dict_ok(v, [o]) for v, o in zip(value, option)):
                return True
    return False
