"""Each export format's row for one frozen pair, against known values."""

import json

import pytest

from apps.datasets.rows import openai_row, render_row, sharegpt_conversations, sharegpt_row, trl_row
from apps.datasets.services import snapshot_freeze, snapshot_rows, trl_rows
from apps.training.policy import policy_tokenizer, query_prompt
from tests.factories import QueryFactory

# The tiny tokenizer's template over QueryFactory's query: ChatML, tools listed compactly, assistant header.
PROMPT = (
    "<|im_start|>system\nTools:\nget_weather(city)<|im_end|>\n"
    "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n"
)
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def frozen(project, make_pair, round_):
    """One approved pair (prefix `[get_weather(`, Paris vs Lyon) frozen for the round; (snapshot, item, pair)."""
    pair = make_pair("approved", round=round_)
    snapshot = snapshot_freeze(project=project, round=round_)
    return snapshot, snapshot.items.select_related("query").get(), pair


def test_trl_row_fragment_span(frozen):
    snapshot, item, pair = frozen
    row = next(trl_rows(snapshot))
    assert row == {
        "prompt": PROMPT + "[get_weather(",
        "chosen": "city='Paris')]",
        "rejected": "city='Lyon')]",
        "metadata": {
            "snapshot_id": snapshot.pk,
            "snapshot_hash": snapshot.content_hash,
            "ordinal": 0,
            "pair_id": pair.pk,
            "query_id": item.query_id,
            "query_external_id": item.query.external_id,
            "deficiency": "wrong_value",
            "gap": pair.gap,
            "status": "approved",
            "chosen_ends": True,
            "rejected_ends": True,
            "completed": False,
        },
        "prompt_ids": None,
        "chosen_ids": None,
        "rejected_ids": None,  # the factory's pair has no sampled ids
    }
    # the prompt is exactly the policy's own rendering (what search sampled from) + the shared prefix
    assert row["prompt"] == query_prompt(policy_tokenizer(snapshot.checkpoint), item.query) + item.prefix


def test_trl_row_completion_span(frozen):
    snapshot, item, _ = frozen
    row = next(snapshot_rows(snapshot, "trl", "completion"))
    assert (row["prompt"], row["chosen"], row["rejected"]) == (
        PROMPT,
        "[get_weather(city='Paris')]",
        "[get_weather(city='Lyon')]",
    )
    # the two spans tell the same texts apart at a different place
    fragment = trl_row(item, item.query, prompt=PROMPT)
    assert fragment["prompt"] + fragment["chosen"] == row["prompt"] + row["chosen"]


def test_openai_row(frozen):
    snapshot, item, _ = frozen
    assert next(snapshot_rows(snapshot, "openai")) == {
        "input": {
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [{"type": "function", "function": WEATHER_TOOL}],
        },
        "preferred_output": [{"role": "assistant", "content": "[get_weather(city='Paris')]"}],
        "non_preferred_output": [{"role": "assistant", "content": "[get_weather(city='Lyon')]"}],
    }
    # no partial assistant turn in OpenAI's format: both spans give the same row
    assert next(snapshot_rows(snapshot, "openai", "completion")) == openai_row(item, item.query)


def test_sharegpt_row(frozen):
    snapshot, item, _ = frozen
    row = next(snapshot_rows(snapshot, "sharegpt"))
    assert row == {
        "conversations": [{"from": "human", "value": "What is the weather in Paris?"}],
        # whole call answers: LLaMA-Factory's function_call turns, JSON {"name", "arguments"}
        "chosen": {"from": "function_call", "value": '{"arguments": {"city": "Paris"}, "name": "get_weather"}'},
        "rejected": {"from": "function_call", "value": '{"arguments": {"city": "Lyon"}, "name": "get_weather"}'},
        "tools": json.dumps([WEATHER_TOOL], sort_keys=True),
    }
    assert json.loads(row["tools"]) == [WEATHER_TOOL]  # a JSON string, as LLaMA-Factory's tools column is


MULTI_TURN = [
    {"role": "system", "content": "You answer weather questions."},
    {"role": "user", "content": "Weather in Paris and Rome, then pick the warmer?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "Paris: 18°C"},
    {"role": "tool", "tool_call_id": "c2", "content": "Rome: 24°C"},
]


def test_sharegpt_conversations_follow_llama_factory_roles(project, make_pair):
    """system first; then human/observation at even places and gpt/function_call at odd ones, ending on an
    observation (a preference row's conversations have an odd length); earlier calls as a function_call turn whose
    value is the JSON LLaMA-Factory's FunctionFormatter reads (a list for parallel calls)."""
    turns = sharegpt_conversations(MULTI_TURN)
    assert turns == [
        {"from": "system", "value": "You answer weather questions."},
        {"from": "human", "value": "Weather in Paris and Rome, then pick the warmer?"},
        {
            "from": "function_call",
            "value": json.dumps(
                [
                    {"arguments": {"city": "Paris"}, "name": "get_weather"},
                    {"arguments": {"city": "Rome"}, "name": "get_weather"},
                ],
                ensure_ascii=False,
            ),
        },
        {"from": "observation", "value": "Paris: 18°C\nRome: 24°C"},
    ]
    after_system = turns[1:]
    assert len(after_system) % 2 == 1
    assert all(
        t["from"] in (("human", "observation") if i % 2 == 0 else ("gpt", "function_call"))
        for i, t in enumerate(after_system)
    )

    pair = make_pair(
        "approved",
        query=QueryFactory(project=project, messages=MULTI_TURN),
        prefix="It is warmer in ",
        chosen="Rome.",
        rejected="Paris.",
    )
    snapshot = snapshot_freeze(project=project)
    row = next(snapshot_rows(snapshot, "sharegpt"))
    assert row["conversations"] == turns
    assert row["chosen"] == {"from": "gpt", "value": "It is warmer in Rome."}
    openai = next(snapshot_rows(snapshot, "openai"))
    # OpenAI's schema: every call's arguments a JSON string (the record had an object for c2)
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
    ]
    assert openai["input"]["messages"] == [
        *MULTI_TURN[:2],
        {"role": "assistant", "content": None, "tool_calls": calls},
        *MULTI_TURN[3:],
    ]
    assert pair.prefix in openai["preferred_output"][0]["content"]


def test_unknown_formats_and_spans_name_the_choices(frozen):
    snapshot, item, _ = frozen
    with pytest.raises(ValueError, match="unknown export format 'csv': expected one of trl, openai, sharegpt"):
        render_row("csv", item, item.query)
    with pytest.raises(ValueError, match="unknown span 'whole': expected one of fragment, completion"):
        trl_row(item, item.query, prompt=PROMPT, span="whole")
    with pytest.raises(ValueError, match="needs the prompt"):
        render_row("trl", item, item.query)
    assert sharegpt_row(item, item.query) == render_row("sharegpt", item, item.query)


def test_fragments_that_stop_mid_answer_are_marked(project, make_pair, round_):
    """A pair from a tree: each side ends the answer only when its node is terminal; rounds train the
    unfinished side without a closing EOS (workers/train/preference.py)."""
    from tests.factories import SearchTreeFactory, TreeNodeFactory

    tree = SearchTreeFactory(project=project)
    root = TreeNodeFactory(tree=tree, fragment="[get_weather(")
    mid = TreeNodeFactory(tree=tree, parent=root, fragment="city='Paris', ", is_terminal=False)
    end = TreeNodeFactory(tree=tree, parent=root, fragment="city='Lyon')]", is_terminal=True, ordinal=1)
    make_pair(
        "approved",
        round=round_,
        tree=tree,
        node=root,
        chosen_node=mid,
        rejected_node=end,
        chosen="city='Paris', ",
        rejected="city='Lyon')]",
    )
    snapshot = snapshot_freeze(project=project, round=round_)
    row = next(trl_rows(snapshot))
    assert (row["metadata"]["chosen_ends"], row["metadata"]["rejected_ends"]) == (False, True)
    item = snapshot.items.get()
    assert (item.chosen_ends, item.rejected_ends) == (False, True)
    from apps.datasets.services import snapshot_content_hash

    assert snapshot_content_hash(snapshot) == snapshot.content_hash
