"""What every importer and the environment generator produce: validated tool and query records.

Pure Python (no Django): `services.records_write` stores them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .difficulty import difficulty_bucket, difficulty_score
from .schema import SchemaError, sha256_of, tool_from_any

KINDS = ("single", "parallel", "multiple", "parallel_multiple", "multi_hop", "irrelevance", "missing_info")
ROLES = ("system", "user", "assistant", "tool")


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

    @classmethod
    def parse(cls, obj, field: str = "tools[0]", implementation: str = "") -> ToolSpec:
        """From an OpenAI or BFCL function definition; SchemaError becomes RecordError."""
        try:
            name, description, parameters = tool_from_any(obj, field)
        except SchemaError as exc:
            raise RecordError(exc.field, exc.message) from None
        return cls(name, description, parameters, implementation)

    def as_openai(self) -> dict:
        """The tool in OpenAI `tools=[...]` form (as `Tool.as_openai` gives a stored one)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

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
        for name in ("messages", "ground_truth", "reference_output", "sub_answers", "final_answer", "metadata"):
            if _has_nul(getattr(self, name)):
                raise RecordError(name, "contains a NUL character (\\u0000), which the database cannot store")
        if self.difficulty is None:
            self.difficulty = difficulty_score(
                kind=self.kind, ground_truth=self.ground_truth, n_tools=len(self.tools)
            )

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


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


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
        (name, params), = call.items()
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
