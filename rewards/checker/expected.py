"""The checker's inputs, read and prepared once per query: the offered tools' schemas and, for each call of
the ground truth, what each parameter accepts (types and values as BFCL's rules compare them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..deficiency import Deficiency as D
from ..schema import SchemaError, tool_from_any
from .verdict import _Failure

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


def _kind(prop: dict) -> str | None:
    """BFCL's type name for a property's schema; None when untyped."""
    if "x-bfcl-type" in prop:
        return prop["x-bfcl-type"]
    kind = prop.get("type")
    return _BFCL_TYPE.get(kind) if isinstance(kind, str) else None


def _first_type(acceptable: list):
    """The type of the first acceptable value other than "" (the optional marker), as BFCL reads it."""
    for item in acceptable:
        if item != "":
            return type(item)
    return None


def standardize(text: str) -> str:
    """BFCL's string normalisation: no spaces or `,./-_*^`, lower case, single quotes as double."""
    return _STRIP_RE.sub("", text).lower().replace("'", '"')


def _std(value):
    return standardize(value) if isinstance(value, str) else value
