"""ToolACE: `{"system", "conversations": [{"from", "value"}]}`, tools listed as JSON in the system prompt."""
from __future__ import annotations

import json

from apps.rewards.parsing import parse_output

from ..records import QuerySpec, RecordError, ToolSpec
from ..schema import sha256_of
from .base import BaseImporter, require

_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "tool": "tool",
          "function": "tool", "observation": "tool", "system": "system"}


def tools_in_system_prompt(system: str) -> list:
    """The first JSON array of objects with a "name" found in the system prompt."""
    decoder = json.JSONDecoder()
    start = system.find("[")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(system, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
            return value
        start = system.find("[", start + 1)
    return []


def calls_to_ground_truth(calls: list[dict]) -> list[dict]:
    return [{c["name"]: {k: [v] for k, v in c["arguments"].items()}} for c in calls]


class ToolAceImporter(BaseImporter):
    """One query per assistant turn that makes calls (earlier turns become its context).

    A record whose first assistant turn is plain text is one query whose right answer is no call.
    """

    name = "toolace"

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        system = require(obj, "system", str)
        turns = require(obj, "conversations", list)
        raw_tools = tools_in_system_prompt(system)
        if not raw_tools:
            raise RecordError("system", "no JSON list of tools found in the system prompt")
        tools = [ToolSpec.parse(t, f"system.tools[{i}]") for i, t in enumerate(raw_tools)]
        base_id = obj.get("id") or sha256_of(obj)[:24]
        messages: list[dict] = [{"role": "system", "content": system}]
        records = []
        for i, turn in enumerate(turns):
            field = f"conversations[{i}]"
            if not isinstance(turn, dict):
                raise RecordError(field, "expected an object")
            role = _ROLES.get(require(turn, "from", str, f"{field}.from"))
            if role is None:
                raise RecordError(f"{field}.from", f"unknown speaker {turn['from']!r}")
            value = require(turn, "value", str, f"{field}.value")
            if role == "assistant":
                parsed = parse_output(value)
                if parsed.status == "malformed":
                    raise RecordError(f"{field}.value", f"assistant answer is not a valid call list: {parsed.error}")
                calls = [c.as_json() for c in parsed.calls] if parsed.status == "calls" else None
                if calls is not None or not records:
                    records.append(
                        QuerySpec(
                            external_id=f"toolace:{base_id}:{i}",
                            messages=list(messages),
                            tools=tools,
                            ground_truth=calls_to_ground_truth(calls) if calls is not None else [],
                            kind=_kind(calls),
                            reference_output=value,
                        )
                    )
            messages.append({"role": role, "content": value})
        if not records:
            raise RecordError("conversations", "no assistant turn")
        return records


def _kind(calls: list[dict] | None) -> str:
    if not calls:
        return "irrelevance"
    if len(calls) == 1:
        return "single"
    return "parallel" if len({c["name"] for c in calls}) == 1 else "parallel_multiple"
