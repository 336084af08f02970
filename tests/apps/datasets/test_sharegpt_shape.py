"""sharegpt rows against LLaMA-Factory's documented sharegpt + ranking + tools shape.

LLaMA-Factory is not installed here; the checker below is written from its documentation and data format
(hiyouga/LLaMA-Factory data/README.md, "Sharegpt Format": human and observation at odd positions, gpt and
function_call at even ones, an optional leading system turn, a preference row's `chosen` / `rejected` messages
of the even tags; its glaive_toolcall example: a `function_call` value is JSON `{"name", "arguments"}`, `tools` a
JSON string of `{"name", "description", "parameters"}`) — the rules its sharegpt converter skips a row for, and
the JSON its function formatter parses."""

import json

import pytest

from apps.datasets.rows import sharegpt_conversations
from apps.datasets.services import snapshot_export, snapshot_freeze
from tests.factories import QueryFactory, ToolFactory

ASK, ANSWER = ("human", "observation"), ("gpt", "function_call")


def _function_call_errors(value, where: str) -> list[str]:
    try:
        calls = json.loads(value)
    except (TypeError, ValueError):
        return [f"{where}: a function_call value must be JSON"]
    calls = calls if isinstance(calls, list) else [calls]
    return [
        f"{where}: each call needs a name and arguments"
        for call in calls
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or "arguments" not in call
    ]


def llama_factory_ranking_errors(row) -> list[str]:
    """Why LLaMA-Factory would skip (or fail on) a sharegpt preference row registered with `"ranking": true` and
    columns messages=conversations, chosen, rejected, tools (empty: it loads)."""
    errors = []
    turns = list(row["conversations"])
    if turns and turns[0]["from"] == "system":
        turns = turns[1:]
    for i, turn in enumerate(turns):
        allowed = ASK if i % 2 == 0 else ANSWER
        if turn["from"] not in allowed:
            errors.append(f"turn {i} is {turn['from']!r}: position {i + 1} takes {' or '.join(allowed)}")
        if not isinstance(turn["value"], str):
            errors.append(f"turn {i}: value must be text")
        if turn["from"] == "function_call":
            errors += _function_call_errors(turn["value"], f"turn {i}")
    if len(turns) % 2 == 0:
        errors.append(f"{len(turns)} turns: a ranking row's conversation must end on a human/observation turn")
    for key in ("chosen", "rejected"):
        answer = row[key]
        if not isinstance(answer, dict) or answer.get("from") not in ANSWER:
            errors.append(f"{key} must be a gpt or function_call message")
        elif answer["from"] == "function_call":
            errors += _function_call_errors(answer["value"], key)
    try:
        tools = json.loads(row["tools"])
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("parameters"), dict)
            for t in tools
        ):
            errors.append("tools must be a JSON list of {name, description, parameters}")
    except (TypeError, ValueError):
        errors.append("tools must be a JSON string")
    return errors


def test_the_checker_refuses_what_llama_factory_skips():
    row = {
        "conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}],
        "chosen": {"from": "gpt", "value": "x"},
        "rejected": {"from": "function_call", "value": "[f(a=1)]"},
        "tools": "[]",
    }
    errors = llama_factory_ranking_errors(row)
    assert any("turn 1 is 'human'" in e for e in errors) and any("must end on" in e for e in errors)
    assert any("rejected: a function_call value must be JSON" in e for e in errors)


def bfcl_record(bfcl_data, record_id: str) -> dict:
    with open(bfcl_data / "BFCL_v4_live_irrelevance.json") as lines:
        return next(r for r in map(json.loads, lines) if r["id"] == record_id)


@pytest.mark.parametrize(
    "record_id", ["live_irrelevance_292-72-1", "live_irrelevance_298-73-5", "live_irrelevance_527-162-2"]
)
def test_bfcl_conversations_with_turns_in_a_row_load(project, make_pair, round_, bfcl_data, record_id):
    """The three BFCL records LLaMA-Factory skipped (two user turns in a row, and more): their turns merge."""
    record = bfcl_record(bfcl_data, record_id)
    messages = record["question"][0]
    query = QueryFactory(
        project=project, messages=messages, tools=[ToolFactory(project=project, name=record["function"][0]["name"])]
    )
    make_pair(
        "approved",
        round=round_,
        query=query,
        prefix="",
        chosen="I cannot help with that.",
        rejected="[get_weather(city='Paris')]",
    )
    snapshot = snapshot_freeze(project=project, round=round_)
    row = json.loads(next(snapshot_export(snapshot, "sharegpt")))
    assert llama_factory_ranking_errors(row) == []
    # nothing is lost: every message's text is in the merged turns, in order
    merged = "\n".join(t["value"] for t in row["conversations"])
    assert merged == "\n".join(m["content"] for m in messages)
    assert row["chosen"] == {"from": "gpt", "value": "I cannot help with that."}  # prose: gpt
    assert json.loads(row["rejected"]["value"]) == {"name": "get_weather", "arguments": {"city": "Paris"}}


def test_calls_are_function_call_json_beside_the_tools_column(project, make_pair, round_):
    """ToolACE-like context (names with spaces, calls as text, tool results); chosen a parallel call answer,
    rejected malformed: the context's calls and the chosen answer are function_call JSON, the malformed answer
    stays text."""
    tools = [ToolFactory(project=project, name="Market Trends API"), ToolFactory(project=project, name="get_weather")]
    messages = [
        {"role": "system", "content": "You are a market assistant."},
        {"role": "user", "content": "Indexes?"},
        {"role": "assistant", "content": '[Market Trends API(trend_type="MARKET_INDEXES")]'},
        {"role": "tool", "content": '{"indexes": []}'},
        {"role": "tool", "content": '{"more": []}'},
        {"role": "assistant", "content": "Nothing moved."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
    ]
    make_pair(
        "approved",
        round=round_,
        query=QueryFactory(project=project, messages=messages, tools=tools),
        prefix="[get_weather(city='Paris'), ",
        chosen="get_weather(city='Rome')]",
        rejected="get_weather(city=]",
    )
    snapshot = snapshot_freeze(project=project, round=round_)
    row = json.loads(next(snapshot_export(snapshot, "sharegpt")))
    assert llama_factory_ranking_errors(row) == []
    assert [t["from"] for t in row["conversations"]] == [
        "system",
        "human",
        "function_call",
        "observation",
        "gpt",
        "human",
    ]
    assert json.loads(row["conversations"][2]["value"]) == {
        "name": "Market Trends API",
        "arguments": {"trend_type": "MARKET_INDEXES"},
    }
    assert row["conversations"][3]["value"] == '{"indexes": []}\n{"more": []}'  # one observation turn
    assert json.loads(row["chosen"]["value"]) == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    assert row["rejected"] == {"from": "gpt", "value": "[get_weather(city='Paris'), get_weather(city=]"}
    assert [t["name"] for t in json.loads(row["tools"])] == ["Market Trends API", "get_weather"]


def test_turns_on_the_same_side_merge_and_calls_win():
    turns = sharegpt_conversations(
        [
            {"role": "user", "content": "a"},
            {"role": "tool", "content": "r"},
            {"role": "assistant", "content": "thinking"},
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
            {"role": "user", "content": "b"},
        ]
    )
    assert turns == [
        {"from": "human", "value": "a\nr"},
        {"from": "function_call", "value": '{"arguments": {}, "name": "f"}'},
        {"from": "human", "value": "b"},
    ]
