"""FTRL records as FTRL's own loaders read them (`tools`, `codes`, `unsolved_set` as JSON strings; `data_source`,
`split`, `answer`, and `solve_rate` on sampled records), and as the decoded form."""

import json

import pytest

from apps.catalog.models import Query, QueryTool, Tool
from apps.catalog.records import RecordError
from apps.catalog.services import import_file

from .test_importers import write_jsonl

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Flights between two airports on a date.",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string"},
                    "destination": {"type": "string"},
                    "date": {"type": "string"},
                },
                "required": ["origin", "destination", "date"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_price",
            "description": "The price of a flight.",
            "parameters": {
                "type": "object",
                "properties": {"flight_number": {"type": "string"}},
                "required": ["flight_number"],
            },
        },
    },
]
CODES = {
    "search_flights": "def search_flights(origin, destination, date):\n"
    "    return [{'flight_number': 'HAT136', 'date': date}]\n",
    "get_price": "def get_price(flight_number):\n    return {'flight_number': flight_number, 'price': 250}\n",
}
UNSOLVED = {"search_flights": ["HAT136"], "get_price": ["250"]}


def ftrl_encoded(**changes):
    """A record as FTRL's files hold it: three fields JSON-encoded."""
    record = {
        "messages": [
            {"role": "system", "content": "You are a travel agent."},
            {"role": "user", "content": "Cheapest flight JFK to SEA on May 20, and its price?"},
        ],
        "tools": json.dumps(TOOLS),
        "codes": json.dumps(CODES),
        "unsolved_set": json.dumps(UNSOLVED),
        "data_source": "ftrl/travel",
        "split": "train",
        "answer": "250",
    }
    return record | changes


def ftrl_decoded(**changes):
    record = ftrl_encoded() | {"tools": TOOLS, "codes": CODES, "unsolved_set": UNSOLVED}
    return record | changes


def test_the_encoded_form_imports_like_the_decoded_one(project, tmp_path):
    counts = import_file(project=project, path=write_jsonl(tmp_path / "e.jsonl", [ftrl_encoded()]), fmt="ftrl")
    assert counts.created == 1
    encoded = Query.objects.get()
    assert encoded.sub_answers == UNSOLVED and encoded.final_answer == "250" and encoded.ground_truth is None
    assert encoded.kind == "multi_hop"
    assert encoded.metadata == {"data_source": "ftrl/travel", "ftrl_split": "train"}
    assert {t.name: t.implementation for t in Tool.objects.all()} == CODES
    assert [t.name for t in encoded.ordered_tools()] == ["search_flights", "get_price"]

    other = project.__class__.objects.create(name="decoded")
    import_file(project=other, path=write_jsonl(tmp_path / "d.jsonl", [ftrl_decoded()]), fmt="ftrl")
    decoded = Query.objects.get(project=other)
    for field in ("messages", "sub_answers", "final_answer", "kind", "metadata", "ground_truth"):
        assert getattr(decoded, field) == getattr(encoded, field)
    assert [t.schema_hash for t in decoded.ordered_tools()] == [t.schema_hash for t in encoded.ordered_tools()]


def test_sampled_records_keep_their_solve_rate_and_tool_messages(project, tmp_path):
    sampled = ftrl_encoded(
        messages=ftrl_encoded()["messages"]
        + [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {
                            "name": "search_flights",
                            "arguments": '{"origin": "JFK", "destination": "SEA", "date": "05-20"}',
                        },
                    }
                ],
            },
            {"role": "tool", "content": '[{"flight_number": "HAT136"}]', "tool_call_id": "c1"},
        ],
        unsolved_set=json.dumps({"search_flights": [], "get_price": ["250"]}),
        solve_rate=0.5,
        split="test",
        answer=None,
    )
    import_file(project=project, path=write_jsonl(tmp_path / "s.jsonl", [sampled]), fmt="ftrl", split="eval")
    query = Query.objects.get()
    assert query.split == "eval"  # the import's split; FTRL's own is kept aside
    assert query.metadata == {"data_source": "ftrl/travel", "ftrl_split": "test", "solve_rate": 0.5}
    assert query.final_answer == "" and query.kind == "single"
    assert query.messages[-1]["tool_call_id"] == "c1"


@pytest.mark.parametrize(
    "bad, field, message",
    [
        (ftrl_encoded(tools='[{"type": "function", "function": {"name": "x"'), "tools", "not valid JSON"),
        (ftrl_encoded(codes="{'search_flights': 'def f(): pass'}"), "codes", "not valid JSON"),
        (ftrl_encoded(unsolved_set='{"search_flights": ["HAT136"],}'), "unsolved_set", "not valid JSON"),
        (ftrl_encoded(tools=json.dumps({"name": "x"})), "tools", "got a string holding dict"),
        (
            ftrl_encoded(codes=json.dumps({"search_flights": "def search_flights(:"})),
            "codes.search_flights",
            "not valid Python",
        ),
        (ftrl_encoded(codes=json.dumps({"search_flights": "x = 1\x00"})), "codes.search_flights", "NUL"),
        (ftrl_encoded(unsolved_set=json.dumps({"book": ["x"]})), "unsolved_set.book", "unknown tool"),
        (ftrl_encoded(data_source=["ftrl"]), "data_source", "expected a string"),
        (ftrl_encoded(answer=250), "answer", "expected a string"),
        (ftrl_encoded(solve_rate="half"), "solve_rate", "expected a number"),
        (ftrl_encoded(tools=5), "tools", "expected list or str"),
    ],
)
def test_bad_fields_name_line_and_field_and_write_nothing(project, tmp_path, bad, field, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [ftrl_encoded(), bad])
    with pytest.raises(RecordError) as info:
        import_file(project=project, path=path, fmt="ftrl")
    assert (info.value.line, info.value.field) == (2, field)
    assert message in info.value.message
    assert Query.objects.count() == Tool.objects.count() == QueryTool.objects.count() == 0
