"""OpenAI chat form: `{"messages", "tools", "expected": [tool_calls]}`; an empty `expected` means no call.

The expected calls are one right answer: optional parameters they leave out may be left out or given their
documented default (`ground_truth_from_calls`)."""

from __future__ import annotations

import json

from rewards.parsing import render_call_list
from rewards.schema import sha256_of

from ..records import QuerySpec, RecordError, ToolSpec, ground_truth_from_calls
from .base import BaseImporter, record_id, require


def parse_tool_call(call, field: str) -> dict:
    """{"name", "arguments"} from an OpenAI tool call (arguments as a JSON string or an object)."""
    if not isinstance(call, dict):
        raise RecordError(field, "expected an object")
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise RecordError(f"{field}.function.name", "missing")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise RecordError(f"{field}.function.arguments", f"invalid JSON: {exc}") from None
    if not isinstance(args, dict):
        raise RecordError(f"{field}.function.arguments", f"expected an object, got {type(args).__name__}")
    return {"name": fn["name"], "arguments": args}


def kind_of(calls: list[dict], n_tools: int) -> str:
    if not calls:
        return "irrelevance"
    distinct = len({c["name"] for c in calls})
    if len(calls) == 1:
        return "multiple" if n_tools > 1 else "single"
    return "parallel" if distinct == 1 else "parallel_multiple"


class OpenAIImporter(BaseImporter):
    name = "openai"

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        messages = require(obj, "messages", list)
        raw_tools = require(obj, "tools", list)
        tools = [ToolSpec.parse(t, f"tools[{i}]") for i, t in enumerate(raw_tools)]
        expected = require(obj, "expected", list)
        calls = [parse_tool_call(c, f"expected[{i}]") for i, c in enumerate(expected)]
        kind = obj.get("kind") or kind_of(calls, len(tools))
        return [
            QuerySpec(
                external_id=f"openai:{record_id(obj) or sha256_of(obj)[:24]}",
                messages=messages,
                tools=tools,
                ground_truth=ground_truth_from_calls(calls, tools),
                kind=kind,
                reference_output=render_call_list(calls) if calls else "",
            )
        ]
