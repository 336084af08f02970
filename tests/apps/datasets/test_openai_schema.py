"""openai rows against OpenAI's documented preference fine-tuning schema.

The validator below is written from OpenAI's documentation, not from this project's code: the DPO guide's data
format (https://platform.openai.com/docs/guides/direct-preference-optimization: `input.messages`, `input.tools`,
`input.parallel_tool_calls`, `preferred_output`, `non_preferred_output`) and the API reference's objects it uses
(`FineTunePreferenceRequestInput`: each output a list of one assistant message; Chat Completions messages: an
assistant's `tool_calls` with `id`, `type: "function"` and `function.{name, arguments}` where arguments is a JSON
string; a `tool` message with `content` and the `tool_call_id` of a call it answers; function names of a-z, A-Z,
0-9, underscores and dashes, at most 64)."""

import json
import re

import pytest

from apps.datasets.rows import openai_messages
from apps.datasets.services import snapshot_export, snapshot_freeze
from tests.factories import QueryFactory, ToolFactory

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ROLES = {"system", "developer", "user", "assistant", "tool"}


def _text(value) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list)
        and all(
            isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
            for part in value
        )
    )


def openai_preference_errors(row) -> list[str]:
    """What OpenAI's validator would refuse in one preference row (empty: the row is valid)."""
    errors = []
    if not isinstance(row, dict) or set(row) != {"input", "preferred_output", "non_preferred_output"}:
        return [f"row keys must be input, preferred_output, non_preferred_output: got {sorted(row or {})}"]
    given = row["input"]
    if (
        not isinstance(given, dict)
        or "messages" not in given
        or set(given) - {"messages", "tools", "parallel_tool_calls"}
    ):
        return [f"input must hold messages (and optionally tools, parallel_tool_calls): got {sorted(given)}"]
    if "parallel_tool_calls" in given and not isinstance(given["parallel_tool_calls"], bool):
        errors.append("input.parallel_tool_calls must be a boolean")
    for i, tool in enumerate(given.get("tools") or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            errors.append(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}")
            continue
        if not isinstance(fn.get("name"), str) or not NAME.match(fn["name"]):
            errors.append(f"tools[{i}].function.name {fn.get('name')!r} is not a-z, A-Z, 0-9, _ or -, up to 64")
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            errors.append(f"tools[{i}].function.parameters must be a JSON schema object")
    messages = given["messages"]
    if not isinstance(messages, list) or not messages:
        return errors + ["input.messages must be a non-empty list"]
    unanswered: set[str] = set()
    for i, message in enumerate(messages):
        where = f"input.messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            errors.append(f"{where}.role {role!r} is not one of {sorted(ROLES)}")
            continue
        if role == "assistant":
            errors += _assistant_errors(message, where, unanswered)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                errors.append(f"{where} (tool) has no tool_call_id")
            elif call_id not in unanswered:
                errors.append(f"{where}.tool_call_id {call_id!r} answers no tool call of the assistant before it")
            else:
                unanswered.discard(call_id)
            if not _text(message.get("content")):
                errors.append(f"{where}.content must be text")
        else:
            if not _text(message.get("content")):
                errors.append(f"{where}.content must be text")
    for key in ("preferred_output", "non_preferred_output"):
        output = row[key]
        if (
            not isinstance(output, list)
            or len(output) != 1
            or not isinstance(output[0], dict)
            or output[0].get("role") != "assistant"
        ):
            errors.append(f"{key} must be a list of one assistant message")
            continue
        errors += _assistant_errors(output[0], key, set())
    return errors


def _assistant_errors(message: dict, where: str, unanswered: set) -> list[str]:
    errors = []
    calls = message.get("tool_calls")
    content = message.get("content")
    if calls is None:
        if not _text(content):
            errors.append(f"{where} (assistant) needs text content or tool_calls")
        return errors
    if content is not None and not _text(content):
        errors.append(f"{where}.content must be text or null")
    if not isinstance(calls, list) or not calls:
        return errors + [f"{where}.tool_calls must be a non-empty list"]
    unanswered.clear()
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
            errors.append(f"{where}.tool_calls[{j}] has no id")
            continue
        if call.get("type") != "function" or not isinstance(fn, dict):
            errors.append(f"{where}.tool_calls[{j}] must be of type function with a function object")
            continue
        if not isinstance(fn.get("name"), str) or not NAME.match(fn["name"]):
            errors.append(f"{where}.tool_calls[{j}].function.name {fn.get('name')!r} is not a valid name")
        try:
            json.loads(fn.get("arguments"))
        except (TypeError, ValueError):
            errors.append(f"{where}.tool_calls[{j}].function.arguments must be a JSON string")
        unanswered.add(call["id"])
    return errors


# A ToolACE conversation as it is stored: tool names with spaces, the calls as text, tool results without ids.
TOOLACE = [
    {"role": "system", "content": "You are a market assistant."},
    {"role": "user", "content": "How are the market indexes doing, and show a football placeholder?"},
    {
        "role": "assistant",
        "content": '[Market Trends API(trend_type="MARKET_INDEXES"), Get Manager Placeholder Image(sport="football")]',
    },
    {"role": "tool", "content": '{"indexes": [{"name": "S&P 500", "change": "+0.4%"}]}'},
    {"role": "tool", "content": '{"image": "https://example.org/football.png"}'},
    {"role": "assistant", "content": "The S&P 500 is up 0.4%; here is the image."},
    {"role": "user", "content": "And the news trends?"},
]
# ... and an OpenAI-form context: ids given, one arguments object, a tool result answering the second call first.
OPENAI_FORM = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
        ],
    },
    {"role": "tool", "tool_call_id": "b-unknown", "content": "Rome: 24"},
    {"role": "tool", "tool_call_id": "a", "content": "Paris: 18"},
    {"role": "tool", "content": "a result nothing asked for"},
]


def test_the_validator_refuses_what_openai_refuses():
    """The validator is not a rubber stamp: the stored ToolACE context as it is fails it."""
    raw = {
        "input": {"messages": TOOLACE, "tools": [{"type": "function", "function": {"name": "Market Trends API"}}]},
        "preferred_output": [{"role": "assistant", "content": "x"}],
        "non_preferred_output": [{"role": "assistant", "content": "y"}],
    }
    errors = openai_preference_errors(raw)
    assert any("has no tool_call_id" in e for e in errors) and any("not a-z" in e for e in errors)
    assert openai_preference_errors({**raw, "preferred_output": []})


@pytest.mark.parametrize("messages", [TOOLACE, OPENAI_FORM], ids=["toolace", "openai-form"])
def test_exported_rows_validate_against_openais_schema(project, make_pair, round_, messages):
    tools = [
        ToolFactory(project=project, name=name)
        for name in ("Market Trends API", "Get Manager Placeholder Image", "get_weather")
    ]
    query = QueryFactory(project=project, messages=messages, tools=tools)
    make_pair(
        "approved",
        round=round_,
        query=query,
        prefix="[News Trends API(",
        chosen="topic='markets')]",
        rejected="topic=)]",
    )
    snapshot = snapshot_freeze(project=project, round=round_)
    rows = [json.loads(line) for line in snapshot_export(snapshot, "openai")]
    assert len(rows) == 1 and openai_preference_errors(rows[0]) == []
    sent = rows[0]["input"]["messages"]
    calls = [c for m in sent if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
    assert answered and set(answered) <= {c["id"] for c in calls}
    if messages is TOOLACE:  # the text calls became tool_calls, each tool result answers one of them, in order
        assert [c["function"]["name"] for c in calls] == ["Market_Trends_API", "Get_Manager_Placeholder_Image"]
        assert answered == [c["id"] for c in calls]
        assert json.loads(calls[1]["function"]["arguments"]) == {"sport": "football"}
        assert sent[-1] == {"role": "user", "content": "And the news trends?"}
    else:  # a given id is kept where it answers a call; an unknown one gets the next open call; an orphan is user
        assert answered == ["call_2", "a"] and sent[-1] == {"role": "user", "content": "a result nothing asked for"}
    assert rows[0]["preferred_output"] == [{"role": "assistant", "content": "[News Trends API(topic='markets')]"}]


def test_openai_messages_leave_a_plain_conversation_as_it_is():
    plain = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "[f(a=1)]"},
        {"role": "user", "content": "again"},
    ]
    # an assistant's text calls that no tool result answers stay text (it is what the assistant said)
    assert openai_messages(plain, ["f"]) == plain
