"""ToolACE: `{"system", "conversations": [{"from", "value"}]}`, the tools listed as JSON in the system prompt.

Each assistant turn that calls tools becomes a query, with the conversation up to it as context. A
conversation whose first assistant turn answers the user in plain text makes a query whose right answer is no
call. Other text turns are counted and skipped with the reason: the answer after tool results (it closes a
call) and later chat (long prose any text answer would match). The tool list is stored as the query's tools
and cut out of the system message, so a prompt does not carry it twice.

Tool names are kept as ToolACE writes them (`Market Trends API`); the call lists are read with those names
(`rewards.parsing`). The ground truth comes from the reference answer, with the optional parameters it
leaves out optional, their documented defaults accepted (`records.ground_truth_from_calls`); a reference that
its own ground truth and schemas would not pass (a required parameter left out, a parameter the schema lacks)
is skipped with the reason.
"""

from __future__ import annotations

import json
import re

from rewards.checker import Checker
from rewards.parsing import call_names, names_in_tools, parse_output
from rewards.schema import sha256_of

from ..records import QuerySpec, RecordError, ToolSpec, ground_truth_from_calls
from .base import BaseImporter, record_id, require

_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "system": "system",
}
_LIST_OF_OBJECTS_RE = re.compile(r'\[\s*\{\s*"')
# The sentence that introduces the list ("Here is a list of functions in JSON format that you can invoke:"),
# from the end of the sentence before it.
_LEAD_IN_RE = re.compile(r"[^.\n]*:\s*$")
_CLOSING_STOP_RE = re.compile(r"^\s*\.")  # the full stop after the list ("[...]. \nShould you decide…")


def tool_list_in_system_prompt(system: str) -> tuple[list, int, int]:
    """The tool list in a system prompt — the first JSON array of objects with names — and where it stands
    (start, end). RecordError when there is none, or when the first array of objects does not parse."""
    decoder = json.JSONDecoder()
    start = system.find("[")
    while start != -1:
        try:
            value, end = decoder.raw_decode(system, start)
        except json.JSONDecodeError as exc:
            if _LIST_OF_OBJECTS_RE.match(system, start):
                raise RecordError(
                    "system", f"the tool list does not parse as JSON: {exc.msg} at character {exc.pos}"
                ) from None
            value = None
        except RecursionError:
            raise RecordError("system", "the tool list is nested too deeply to read") from None
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, dict) for v in value)
            and any("name" in v for v in value)
        ):
            return value, start, end
        start = system.find("[", start + 1)
    raise RecordError("system", 'no JSON list of tools ([{"name": …}, …]) found in the system prompt')


def system_without_tool_list(system: str, start: int, end: int) -> str:
    """The system prompt with its tool list (and the sentence introducing it) cut out."""
    before, after = system[:start], system[end:]
    lead_in = _LEAD_IN_RE.search(before)
    if lead_in:
        before = before[: lead_in.start()]
    after = _CLOSING_STOP_RE.sub("", after, count=1)
    return "\n".join(part for part in (before.rstrip(), after.strip()) if part)


class ToolAceImporter(BaseImporter):
    name = "toolace"

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        system = require(obj, "system", str)
        turns = require(obj, "conversations", list)
        raw_tools, start, end = tool_list_in_system_prompt(system)
        tools = [ToolSpec.parse(t, f"system.tools[{i}]") for i, t in enumerate(raw_tools)]
        base_id = record_id(obj) or sha256_of(obj)[:24]
        prompt = system_without_tool_list(system, start, end)
        conversation = _Conversation(self, tools, base_id)
        messages: list[dict] = [{"role": "system", "content": prompt}] if prompt else []
        records, answered = [], False
        for i, turn in enumerate(turns):
            field = f"conversations[{i}]"
            if not isinstance(turn, dict):
                raise RecordError(field, "expected an object")
            role = _ROLES.get(require(turn, "from", str, f"{field}.from"))
            if role is None:
                raise RecordError(f"{field}.from", f"unknown speaker {turn['from']!r}")
            value = require(turn, "value", str, f"{field}.value")
            if role == "assistant":
                answered = True
                record = conversation.query_for(i, value, messages)
                if record is not None:
                    records.append(record)
            messages.append({"role": role, "content": value})
        if not answered:
            raise RecordError("conversations", "no assistant turn")
        return records


class _Conversation:
    """One record's tools, and the query each assistant turn makes (or the reason it makes none)."""

    def __init__(self, importer: ToolAceImporter, tools: list[ToolSpec], base_id: str):
        self.report, self.tools, self.base_id = importer.report, tools, base_id
        self.answered = False  # whether an assistant turn came before
        self.offered = sorted({tool.name for tool in tools})
        self.names = call_names(names_in_tools({tool.name: tool.parameters for tool in tools}))
        self._checker_tools = [tool.as_openai() for tool in tools]

    def query_for(self, index: int, value: str, context: list[dict]) -> QuerySpec | None:
        try:
            return self._query_for(index, value, context)
        finally:
            self.answered = True

    def _query_for(self, index: int, value: str, context: list[dict]) -> QuerySpec | None:
        field = f"conversations[{index}].value"
        parsed = parse_output(value, self.names)
        if parsed.status == "malformed":
            raise RecordError(field, f"assistant answer is not a valid call list: {parsed.error}")
        previous = context[-1]["role"] if context else None
        if parsed.status == "calls" and parsed.calls:
            self.report.call_turns += 1
            return self._call_query(index, field, value, [call.as_json() for call in parsed.calls], context)
        self.report.no_call_turns += 1
        if previous != "user":
            what = {"tool": "tool results (the answer that closes a call)", None: "nothing"}.get(
                previous, f"a {previous} turn"
            )
            self.report.skip(f"a text answer after {what}")
            return None
        if self.answered:
            # Chat further into a conversation (explanations, opinions) is mostly long prose any text answer
            # would match: as queries they would crowd the selection and give searches nothing to compare.
            self.report.skip("a later text reply to a user (only a conversation's first answer makes a no-call query)")
            return None
        return self._query(index, context, [], "irrelevance", value)

    def _call_query(self, index: int, field: str, value: str, calls: list[dict], context: list[dict]):
        unknown = [call["name"] for call in calls if call["name"] not in self.offered]
        if unknown:
            raise RecordError(
                field, f"calls {unknown[0]!r}, which the record does not offer (offered: {', '.join(self.offered)})"
            )
        if not context:
            self.report.skip("a call with nothing before it")
            return None
        truth = ground_truth_from_calls(calls, self.tools)
        verdict = Checker(truth, self._checker_tools)(value)
        if not verdict.valid:  # the reference would fail its own query: no right answer to learn
            self.report.skip(
                f"the reference answer does not fit its tools' schemas ({verdict.deficiency.replace('_', ' ')})"
            )
            return None
        return self._query(index, context, truth, _kind(calls), value)

    def _query(self, index: int, context: list[dict], truth: list, kind: str, value: str) -> QuerySpec:
        return QuerySpec(
            external_id=f"toolace:{self.base_id}:{index}",
            messages=list(context),
            tools=self.tools,
            ground_truth=truth,
            kind=kind,
            reference_output=value,
            metadata={"toolace_turn": index},
        )


def _kind(calls: list[dict]) -> str:
    if len(calls) == 1:
        return "single"
    return "parallel" if len({c["name"] for c in calls}) == 1 else "parallel_multiple"
