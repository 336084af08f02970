"""The openai rows: OpenAI's preference fine-tuning format."""

from __future__ import annotations

import json
import re

from rewards.parsing import parse_output

# --- openai ------------------------------------------------------------------------------------------------
# OpenAI's preference fine-tuning rows (https://platform.openai.com/docs/guides/direct-preference-optimization,
# "Data format"; the message and tool objects are the Chat Completions ones of its API reference): an assistant
# message's `tool_calls` carry an `id`, `"type": "function"` and `function.arguments` as a JSON string; every `tool`
# message answers one of them by `tool_call_id`; function names are a-z, A-Z, 0-9, `_` and `-`, at most 64.

_OPENAI_NAME = re.compile(r"[^A-Za-z0-9_-]")


def openai_name(name: str) -> str:
    """A tool name as OpenAI accepts it: other characters (ToolACE's spaces) become `_`, cut at 64."""
    return _OPENAI_NAME.sub("_", name)[:64] or "_"


def openai_tool(tool: dict) -> dict:
    return {**tool, "function": {**tool["function"], "name": openai_name(tool["function"]["name"])}}


def _message_calls(message: dict, names) -> list[dict]:
    """An assistant message's calls as [{"id" or None, "name", "arguments": dict}]: its `tool_calls`, or the calls
    its text makes (ToolACE keeps calls as text `[Func(a=1)]`) when it has no `tool_calls`."""
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call)
        arguments = fn.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = {"_raw": arguments}  # kept, not lost: the schema only asks for a JSON string
        calls.append({"id": call.get("id"), "name": fn["name"], "arguments": arguments})
    if calls or not isinstance(message.get("content"), str):
        return calls
    parsed = parse_output(message["content"], names)
    return [{"id": None, **c.as_json()} for c in parsed.calls] if parsed.status == "calls" else []


def _text(content) -> str:
    return content if isinstance(content, str) else "" if content is None else json.dumps(content, ensure_ascii=False)


def openai_messages(messages: list[dict], names=()) -> list[dict]:
    """The query's messages in OpenAI's chat form: assistant calls as `tool_calls` with ids (`call_<n>` where the
    record had none; calls written as text become `tool_calls` when tool results answer them), each tool result
    with the `tool_call_id` of the call it answers (its own when that matches, else the next unanswered call of
    the assistant turn before it that no later result names, in order). A tool result with no call to answer
    becomes a user message."""
    out: list[dict] = []
    open_ids: list[str] = []  # the last assistant turn's calls not answered yet
    made = 0
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            follows = index + 1 < len(messages) and messages[index + 1].get("role") == "tool"
            calls = _message_calls(message, names) if message.get("tool_calls") or follows else []
            if not calls:
                out.append({"role": "assistant", "content": _text(message.get("content"))})
                open_ids = []
                continue
            tool_calls = []
            for call in calls:
                made += 1
                call_id = call["id"] if isinstance(call["id"], str) and call["id"] else f"call_{made}"
                tool_calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": openai_name(call["name"]),
                            "arguments": json.dumps(call["arguments"], ensure_ascii=False, sort_keys=True),
                        },
                    }
                )
            text = message.get("content") if message.get("tool_calls") else None  # text calls: now tool_calls
            out.append(
                {
                    "role": "assistant",
                    "content": text if isinstance(text, str) and text else None,
                    "tool_calls": tool_calls,
                }
            )
            open_ids = [c["id"] for c in tool_calls]
        elif role == "tool":
            own = message.get("tool_call_id")
            claimed = set()  # ids the next tool results give as their own: kept for them
            for later in messages[index + 1 :]:
                if later.get("role") != "tool":
                    break
                claimed.add(later.get("tool_call_id"))
            free = [c for c in open_ids if c not in claimed] or open_ids
            call_id = own if own in open_ids else free[0] if free else None
            if call_id is None:
                out.append({"role": "user", "content": _text(message.get("content"))})
                continue
            open_ids.remove(call_id)
            out.append({"role": "tool", "tool_call_id": call_id, "content": _text(message.get("content"))})
        else:
            out.append({"role": role, "content": _text(message.get("content"))})
            open_ids = []
    return out
