"""The sharegpt rows: LLaMA-Factory's sharegpt preference format."""

from __future__ import annotations

import json

from apps.catalog.models import Query
from apps.training.policy import query_tools
from rewards.parsing import parse_output

from .fields import _encode
from .openai import _message_calls, _text

# --- sharegpt ----------------------------------------------------------------------------------------------
# LLaMA-Factory's sharegpt role tags (data/README.md, "tags"): human and observation at even indexes of
# `conversations` (0, 2, …), gpt and function_call at odd ones; a leading "system" turn is the system
# prompt; a preference row's conversations end on a human/observation turn (odd count). A `function_call`
# turn's value is JSON, `{"name", "arguments"}` or a list of them (its FunctionFormatter parses it and the
# template writes the calls in its own tool format, e.g. Qwen's `<tool_call>` tags).
_SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "tool": "observation", "system": "system"}
_ASKS = ("human", "observation")  # the turns at even places
_ANSWERS = ("gpt", "function_call")  # ... and at odd ones


def _function_call(calls: list[dict]) -> str:
    """A function_call turn's value: one call's `{"name", "arguments"}`, or a list of them (parallel calls)."""
    value = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
    return _encode(value[0] if len(value) == 1 else value)


def sharegpt_answer(text: str, names=()) -> dict:
    """An assistant answer as a sharegpt turn: `function_call` with its calls as JSON when the text is a
    well-formed call answer, else `gpt` with the text as it is (prose, a malformed or unfinished call)."""
    parsed = parse_output(text, names)
    if parsed.status == "calls" and parsed.calls:
        return {"from": "function_call", "value": _function_call([c.as_json() for c in parsed.calls])}
    return {"from": "gpt", "value": text}


def _merge(turns: list[dict], turn: dict) -> None:
    """Append `turn`, merged into the previous one when both sit on the same side of the alternation
    (two user messages in a row, as BFCL's live_irrelevance_292 has; consecutive tool results; two answers)."""
    if not turns or turns[-1]["from"] == "system" or (turns[-1]["from"] in _ASKS) != (turn["from"] in _ASKS):
        turns.append(turn)
        return
    last = turns[-1]
    if "function_call" in (last["from"], turn["from"]):  # calls win: a function_call value must stay JSON
        calls = [c for t in (last, turn) if t["from"] == "function_call" for c in _as_list(json.loads(t["value"]))]
        turns[-1] = {"from": "function_call", "value": _function_call(calls)}
        return
    kind = last["from"] if last["from"] == turn["from"] else "human"
    turns[-1] = {"from": kind, "value": last["value"] + "\n" + turn["value"]}


def _as_list(value):
    return value if isinstance(value, list) else [value]


def sharegpt_conversations(messages: list[dict], names=()) -> list[dict]:
    """OpenAI chat messages as sharegpt turns that keep LLaMA-Factory's alternation: consecutive turns on the
    same side merge (texts joined by a newline); assistant calls (`tool_calls`, or calls written as text)
    become a `function_call` turn (any text beside them is dropped: the value must be JSON)."""
    turns: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            calls = _message_calls(message, names)
            turn = (
                {"from": "function_call", "value": _function_call(calls)}
                if calls
                else {"from": "gpt", "value": _text(message.get("content"))}
            )
        else:
            turn = {"from": _SHAREGPT_FROM.get(role, role), "value": _text(message.get("content"))}
        _merge(turns, turn)
    return turns


def sharegpt_tools(query: Query) -> str:
    """sharegpt's `tools`: a JSON string (keys sorted) of the bare function schemas `{"name", "description",
    "parameters"}`."""
    functions = []
    for tool in query_tools(query):
        fn = dict(tool["function"])
        fn["parameters"] = fn.get("parameters") or {"type": "object", "properties": {}}
        functions.append(fn)
    return _encode(functions)  # canonical, as encode_row
