"""What every importer and the environment generator produce: validated tool and query records.

Pure Python (no Django): `services.records_write` stores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rewards.schema import SchemaError, sha256_of, tool_from_any

from .difficulty import difficulty_bucket, difficulty_score

KINDS = ("single", "parallel", "multiple", "parallel_multiple", "multi_hop", "irrelevance", "missing_info")
ROLES = ("system", "user", "assistant", "tool")
MAX_NAME_LENGTH = 255  # Query.external_id and Tool.name hold this many characters
MAX_JSON_DEPTH = 100  # deeper values are refused: no real record nests so deep, and databases refuse some
NUL_MESSAGE = "contains a NUL character (\\u0000), which the database cannot store"


class RecordError(ValueError):
    """A record that cannot be imported: the field at fault and why. `line` is set by the reader."""

    def __init__(self, field: str, message: str, line: int | None = None):
        self.field, self.message, self.line = field, message, line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field}: {self.message}"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict
    implementation: str = ""
    origin: str = field(default="tool", compare=False, repr=False)  # where it was read, for error messages

    def __post_init__(self):
        if len(self.name) > MAX_NAME_LENGTH:
            raise RecordError(f"{self.origin}.name", f"{len(self.name)} characters long: at most {MAX_NAME_LENGTH} fit")
        parts = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "implementation": self.implementation,
        }
        if problem := json_problem(parts):
            raise RecordError(f"{self.origin}{problem[0]}", problem[1])

    @classmethod
    def parse(cls, obj, field: str = "tools[0]", implementation: str = "") -> ToolSpec:
        """From an OpenAI or BFCL function definition; SchemaError becomes RecordError."""
        try:
            name, description, parameters = tool_from_any(obj, field)
        except SchemaError as exc:
            raise RecordError(exc.field, exc.message) from None
        if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
            field = f"{field}.function"
        return cls(name, description, parameters, implementation, origin=field)

    def as_openai(self) -> dict:
        """The tool in OpenAI `tools=[...]` form (as `Tool.as_openai` gives a stored one)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @property
    def schema_hash(self) -> str:
        return sha256_of({"name": self.name, "description": self.description, "parameters": self.parameters})


@dataclass
class QuerySpec:
    external_id: str
    messages: list
    tools: list[ToolSpec]
    ground_truth: list | None  # BFCL possible answers; [] = no call is right; None = unknown
    kind: str = "single"
    reference_output: str = ""
    sub_answers: dict = field(default_factory=dict)
    final_answer: str = ""
    metadata: dict = field(default_factory=dict)
    split: str | None = None  # set by sources that split themselves (the generator)
    difficulty: float | None = None  # computed from the record when not given
    line: int | None = None  # where the record came from, for messages

    def __post_init__(self):
        self.tools = _dedupe_tools(self.tools)
        validate_messages(self.messages)
        if self.kind not in KINDS:
            raise RecordError("kind", f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.ground_truth is not None:
            validate_ground_truth(self.ground_truth, self.tools)
        if not isinstance(self.sub_answers, dict):
            raise RecordError("sub_answers", "expected an object of tool name → answers")
        validate_external_id(self.external_id)
        for name in ("messages", "ground_truth", "reference_output", "sub_answers", "final_answer", "metadata"):
            if problem := json_problem(getattr(self, name)):
                raise RecordError(f"{name}{problem[0]}", problem[1])
        if self.difficulty is None:
            self.difficulty = difficulty_score(kind=self.kind, ground_truth=self.ground_truth, n_tools=len(self.tools))

    @property
    def difficulty_bucket(self) -> str:
        return difficulty_bucket(self.difficulty)

    @property
    def content_hash(self) -> str:
        return sha256_of(
            {
                "messages": self.messages,
                "tools": [t.schema_hash for t in self.tools],
                "ground_truth": self.ground_truth,
                "reference_output": self.reference_output,
                "sub_answers": self.sub_answers,
                "final_answer": self.final_answer,
                "kind": self.kind,
            }
        )


def validate_external_id(external_id) -> None:
    """An id the Query.external_id column can hold: a non-empty string of at most 255 characters, no NUL."""
    if not isinstance(external_id, str) or not external_id:
        raise RecordError("id", "missing or empty")
    if len(external_id) > MAX_NAME_LENGTH:
        raise RecordError(
            "id",
            f"makes an external id of {len(external_id)} characters ({external_id[:40]}…): "
            f"at most {MAX_NAME_LENGTH} fit",
        )
    if "\x00" in external_id:
        raise RecordError("id", NUL_MESSAGE)


def json_problem(value, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(path, what is wrong) for the first part of a JSON value the database cannot store — a NUL character
    in a string or key, NaN or Infinity, nesting deeper than `max_depth` — or None. Paths read
    `[0].content`, `.parameters.properties.city` (relative to the value)."""
    stack = [(value, "", 0, "")]
    while stack:
        item, path, depth, anchor = stack.pop()
        anchor = path if depth <= 2 else anchor  # too deep is said of the field, not of its 100th level
        if isinstance(item, str):
            if "\x00" in item:
                return path, NUL_MESSAGE
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, f"{item} is no JSON number (NaN and Infinity cannot be stored)"
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                return anchor, f"nested deeper than {max_depth} levels"
            children = []
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                where = f"{path}[{key}]" if isinstance(item, list) else f"{path}.{key}"
                if isinstance(key, str) and "\x00" in key:
                    return where.replace("\x00", "\\u0000"), NUL_MESSAGE
                children.append((child, where, depth + 1, anchor))
            stack.extend(reversed(children))  # depth first, in document order
    return None


def documented_default(prop: dict) -> list:
    """The default a parameter's schema documents, as a value of the parameter's type ([] when there is none
    or it does not convert: "10" for an integer becomes 10, "true" for a boolean True)."""
    if not isinstance(prop, dict) or prop.get("default") in (None, ""):
        return []
    value, kind = prop["default"], prop.get("type")
    try:
        if kind == "integer" and not isinstance(value, bool):
            number = float(value)
            return [int(number)] if number.is_integer() else []
        if kind == "number" and not isinstance(value, bool):
            return [value if isinstance(value, (int, float)) else float(value)]
        if kind == "boolean":
            if isinstance(value, bool):
                return [value]
            return {"true": [True], "false": [False]}.get(str(value).strip().lower(), [])
        if kind == "string":
            return [value if isinstance(value, str) else str(value)] if not isinstance(value, (dict, list)) else []
        if kind == "array":
            return [value] if isinstance(value, list) else []
        if kind == "object":
            return [value] if isinstance(value, dict) else []
    except (TypeError, ValueError, OverflowError):
        return []
    return [value] if kind is None else []


def ground_truth_from_calls(calls: list[dict], tools: list[ToolSpec]) -> list[dict]:
    """BFCL possible answers from one reference answer (`[{"name", "arguments"}]`): each value passed is the
    right one; each optional parameter the reference leaves out may be left out (`""`) or given its documented
    default, as BFCL's possible answers list them."""
    by_name = {tool.name: tool for tool in tools}
    truth = []
    for call in calls:
        tool = by_name.get(call["name"])
        properties = tool.parameters.get("properties", {}) if tool is not None else {}
        answer = {param: _acceptable(value, properties.get(param)) for param, value in call["arguments"].items()}
        if tool is not None:
            required = set(tool.parameters.get("required") or [])
            for param, prop in properties.items():
                if param not in answer and param not in required:
                    answer[param] = ["", *documented_default(prop)]
        truth.append({call["name"]: answer})
    return truth


def _acceptable(value, prop) -> list:
    """The acceptable values for one passed value. An object is written as BFCL writes nested answers —
    each key with its list of acceptable values — as is each object in a list of objects."""
    prop = prop if isinstance(prop, dict) else {}
    kind, items = prop.get("type"), prop.get("items")
    if isinstance(value, dict) and kind in ("object", None):
        return [{key: [item] for key, item in value.items()}]
    if (
        kind == "array"
        and isinstance(items, dict)
        and items.get("type") == "object"
        and isinstance(value, list)
        and all(isinstance(item, dict) for item in value)
    ):
        return [[{key: [v] for key, v in item.items()} for item in value]]
    return [value]


def _dedupe_tools(tools: list[ToolSpec]) -> list[ToolSpec]:
    """The same tool listed twice is kept once; two different tools under one name are an error."""
    seen: dict[str, ToolSpec] = {}
    out = []
    for i, tool in enumerate(tools):
        other = seen.get(tool.name)
        if other is None:
            seen[tool.name] = tool
            out.append(tool)
        elif other.schema_hash != tool.schema_hash:
            raise RecordError(f"tools[{i}]", f"duplicate tool name {tool.name!r} with a different schema")
    return out


def validate_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise RecordError("messages", "expected a non-empty list of messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise RecordError(f"messages[{i}]", f"expected an object, got {type(msg).__name__}")
        if msg.get("role") not in ROLES:
            raise RecordError(f"messages[{i}].role", f"expected one of {', '.join(ROLES)}, got {msg.get('role')!r}")
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            raise RecordError(f"messages[{i}].content", f"expected a string, got {type(content).__name__}")
        if content is None and not msg.get("tool_calls"):
            raise RecordError(f"messages[{i}].content", "missing (and no tool_calls)")


def validate_ground_truth(ground_truth, tools: list[ToolSpec]) -> None:
    """BFCL possible-answer form, naming only offered tools."""
    if not isinstance(ground_truth, list):
        raise RecordError("ground_truth", f"expected a list, got {type(ground_truth).__name__}")
    by_name = {t.name: t for t in tools}
    for i, call in enumerate(ground_truth):
        where = f"ground_truth[{i}]"
        if not isinstance(call, dict) or len(call) != 1:
            raise RecordError(where, 'expected {"function_name": {"param": [acceptable values]}}')
        ((name, params),) = call.items()
        if name not in by_name:
            offered = ", ".join(sorted(by_name)) or "none"
            raise RecordError(where, f"unknown tool {name!r} (offered: {offered})")
        if not isinstance(params, dict):
            raise RecordError(f"{where}.{name}", "expected an object of parameter → acceptable values")
        # Parameters are not checked against the schema: BFCL's own data names a few that its
        # schemas lack, and the checker reports those as the data set does.
        for param, values in params.items():
            if not isinstance(values, list):
                raise RecordError(f"{where}.{name}.{param}", "expected a list of acceptable values")
