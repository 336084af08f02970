"""Parsed calls against the prepared answers: BFCL's parallel matching and simple function check."""

from __future__ import annotations

from ..deficiency import Deficiency as D
from ..parsing import ParsedCall
from .expected import _ExpectedCall, _ExpectedParam, _first_type, _std, standardize
from .verdict import _Failure

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
