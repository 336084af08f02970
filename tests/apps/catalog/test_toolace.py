"""ToolACE records as they really are: tool names with spaces and other characters, several call turns per
conversation, multi-call turns, tool turns, prose turns, documented defaults, the tool list in the system
prompt. The records are written here in ToolACE's shape (its system prompt, `"type": "dict"` schemas,
`"required": null` beside them, `[{"name", "results"}]` tool turns)."""

import json

import pytest
from django.core.management import call_command

from apps.catalog.models import Query, QueryTool, Tool
from apps.catalog.records import RecordError
from apps.catalog.services import import_file
from rewards.checker import Checker

from .test_importers import write_jsonl

PREFIX = (
    "You are an expert in composing functions. You are given a question and a set of possible functions. \n"
    "Based on the question, you will need to make one or more function/tool calls to achieve the purpose. \n"
    "If none of the function can be used, point it out. If the given question lacks the parameters required by "
    "the function,\nalso point it out. You should only return the function call in tools call sections.\n"
    "Here is a list of functions in JSON format that you can invoke:\n"
)
SUFFIX = (
    ". \nShould you decide to return the function call(s). \nPut it in the format of [func1(params_name="
    "params_value, params_name2=params_value2...), func2(params)]\n\nNO other text MUST be included. \n"
)


def toolace_tool(name, description, properties, required):
    return {
        "name": name,
        "description": description,
        "parameters": {"type": "dict", "properties": properties, "required": required},
        "required": None,
    }


MARKET = toolace_tool(
    "Market Trends API",
    "Latest market trends for a country and language.",
    {
        "trend_type": {"description": "Trend type.", "type": "string", "enum": ["MARKET_INDEXES", "GAINERS", "LOSERS"]},
        "country": {"description": "2-letter country code.", "type": "string", "default": "us"},
        "language": {"description": "2-letter language code.", "type": "string", "default": "en"},
    },
    ["trend_type"],
)
FILINGS = toolace_tool(
    "SEC Filings",
    "SEC filings of a company.",
    {
        "identifier": {"description": "Stock symbol or CIK.", "type": "string", "default": "aapl"},
    },
    ["identifier"],
)
MOBILITY = toolace_tool(
    "United States Away from Home Mobility API",
    "Daily time spent away from home.",
    {
        "string": {"description": "The date (YYYY-MM-DD).", "type": "string"},
        "state": {"description": "The state (optional, default: all states).", "type": "string"},
    },
    ["string"],
)
IMAGE = toolace_tool(
    "Get Manager Placeholder Image",
    "Manager placeholder image for a sport.",
    {
        "sport": {"description": "The sport.", "type": "string"},
    },
    ["sport"],
)
FUNDAMENTALS = toolace_tool(
    "Financial Fundamentals API",
    "Fundamentals of a share over a period.",
    {
        "shareuid": {"description": "Share id.", "type": "int"},
        "from": {"description": "Start date.", "type": "string"},
        "to": {"description": "End date.", "type": "string"},
        "period": {"description": "Months per step.", "type": "int", "default": "12"},
    },
    ["shareuid", "from", "to"],
)
COMPETITIONS = toolace_tool("GetCompetitions", "Football competitions televised in Peru.", {}, [])
AGENT = toolace_tool(
    "Get Agent's Active Listings (Q&A)",
    "Listings of an agent.",
    {"agent_id": {"description": "Agent id.", "type": "string"}},
    ["agent_id"],
)


def toolace(tools, turns, **extra):
    return {
        "system": PREFIX + json.dumps(tools) + SUFFIX,
        "conversations": [{"from": role, "value": value} for role, value in turns],
        **extra,
    }


def result(name, **results):
    return json.dumps([{"name": name, "results": results}])


FINANCE = toolace(
    [MARKET, FILINGS, MOBILITY],
    [
        ("user", "Could you get me the top market trends in the US?"),
        ("assistant", '[Market Trends API(trend_type="MARKET_INDEXES", country="us")]'),
        ("tool", result("Market Trends API", trends=[{"name": "S&P 500", "percentage_change": "+0.68%"}])),
        ("assistant", "Here are the top market trends in the US right now: the S&P 500 is up 0.68%."),
        ("user", "Could you explain what SEC filings are?"),
        ("assistant", "SEC filings are official documents that public companies submit to the SEC."),
        ("user", "Could you get the SEC filings for Apple? Also, how has COVID-19 affected mobility in the US?"),
        (
            "assistant",
            '[SEC Filings(identifier="AAPL"), United States Away from Home Mobility API(string="2025-05-17")]',
        ),
        ("tool", result("SEC Filings", filings=["10-K"])),
        ("tool", result("United States Away from Home Mobility API", change="-12%")),
        ("assistant", "Apple filed a 10-K; time spent away from home changed by -12%."),
    ],
)
SPORTS = toolace(
    [COMPETITIONS, IMAGE, AGENT],
    [
        ("user", "How important are manager images in sports marketing?"),
        ("assistant", "Manager images are quite significant in sports marketing and branding."),
        ("user", "Show me the football competitions televised in Peru, and a manager placeholder image for football."),
        ("assistant", '[GetCompetitions(), Get Manager Placeholder Image(sport="football")]'),
        ("tool", result("GetCompetitions", competitions=["Liga 1"])),
        ("tool", result("Get Manager Placeholder Image", image="data:image/png;base64,iVBORw0KGgo=")),
        ("assistant", "Here they are."),
        ("user", "And the listings of agent A-17?"),
        ("assistant", "[Get Agent's Active Listings (Q&A)(agent_id='A-17')]"),
    ],
    id="sports-1",
)
FUNDS = toolace(
    [FUNDAMENTALS],
    [
        ("user", "ROA of share 6789 over 2025?"),
        ("assistant", '[Financial Fundamentals API(shareuid=6789, from="2025-01-01", to="2025-12-31")]'),
    ],
)


def test_every_call_turn_becomes_a_query_with_its_context(project, tmp_path):
    path = tmp_path / "data.json"  # ToolACE ships one JSON array
    path.write_text(json.dumps([FINANCE, SPORTS, FUNDS]))
    counts = import_file(project=project, path=path, fmt="toolace")
    assert counts.read == 3
    assert (counts.call_turns, counts.no_call_turns) == (5, 5)
    assert counts.skipped == {
        "a text answer after tool results (the answer that closes a call)": 3,
        "a later text reply to a user (only a conversation's first answer makes a no-call query)": 1,
    }
    assert counts.created == 6 and counts.by_kind == {"single": 3, "parallel_multiple": 2, "irrelevance": 1}

    first = Query.objects.get(reference_output__startswith="[Market")
    second = Query.objects.get(reference_output__startswith="[SEC Filings")
    assert (first.metadata, second.metadata) == ({"toolace_turn": 1}, {"toolace_turn": 7})
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert [m["role"] for m in second.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert second.messages[2]["content"] == first.reference_output  # earlier calls stay in the context
    assert second.kind == "parallel_multiple"
    assert second.ground_truth == [
        {"SEC Filings": {"identifier": ["AAPL"]}},
        {"United States Away from Home Mobility API": {"string": ["2025-05-17"], "state": [""]}},
    ]
    assert [t.name for t in second.ordered_tools()] == [
        "Market Trends API",
        "SEC Filings",
        "United States Away from Home Mobility API",
    ]
    # the tool list lives in the tools, not twice in the prompt; the instructions stay
    system = second.messages[0]["content"]
    assert "Market Trends API" not in system and "Here is a list of functions" not in system
    assert system.startswith("You are an expert in composing functions.")
    assert "Put it in the format of [func1(" in system and not system.startswith(".")
    # a conversation that opens in prose: no call is the right first answer
    chat = Query.objects.get(kind="irrelevance")
    assert chat.ground_truth == [] and chat.messages[-1]["content"].startswith("How important")
    assert Query.objects.get(reference_output__startswith="[Get Agent").ground_truth == [
        {"Get Agent's Active Listings (Q&A)": {"agent_id": ["A-17"]}}
    ]
    # a parameter named like a Python keyword
    assert Query.objects.get(reference_output__startswith="[Financial").ground_truth == [
        {
            "Financial Fundamentals API": {
                "shareuid": [6789],
                "from": ["2025-01-01"],
                "to": ["2025-12-31"],
                "period": ["", 12],
            }
        }
    ]
    assert Tool.objects.filter(name="United States Away from Home Mobility API").count() == 1


def test_each_query_scores_its_own_reference_right(project, tmp_path):
    import_file(project=project, path=write_jsonl(tmp_path / "t.jsonl", [FINANCE, SPORTS, FUNDS]), fmt="toolace")
    for query in Query.objects.all():
        checker = Checker(query.ground_truth, [t.as_openai() for t in query.ordered_tools()])
        verdict = checker(query.reference_output)
        assert verdict.valid, (query.external_id, verdict.detail)


def test_defaults_and_left_out_optionals_follow_bfcl(project, tmp_path):
    import_file(project=project, path=write_jsonl(tmp_path / "t.jsonl", [FINANCE]), fmt="toolace")
    query = Query.objects.get(reference_output__startswith="[Market")
    assert query.ground_truth == [
        {"Market Trends API": {"trend_type": ["MARKET_INDEXES"], "country": ["us"], "language": ["", "en"]}}
    ]
    check = Checker(query.ground_truth, [t.as_openai() for t in query.ordered_tools()])
    assert check('[Market Trends API(trend_type="MARKET_INDEXES", country="us", language="en")]').valid
    assert check('[Market Trends API(trend_type="MARKET_INDEXES", country="us")]').valid
    assert check('[Market Trends API(trend_type="MARKET_INDEXES", country="us", language="fr")]').deficiency == (
        "wrong_value"
    )
    assert check('[Market Trends API(trend_type="GAINERS", country="us")]').deficiency == "wrong_value"
    assert check('[SEC Filings(identifier="AAPL")]').deficiency == "wrong_function"


def test_a_reference_its_own_schemas_refuse_is_skipped_with_the_reason(project, tmp_path):
    broken = toolace(
        [MARKET],
        [
            ("user", "Trends?"),
            ("assistant", '[Market Trends API(country="us")]'),  # the required trend_type left out
            ("tool", result("Market Trends API", trends=[])),
            ("assistant", "None today."),
            ("user", "Gainers then?"),
            ("assistant", '[Market Trends API(trend_type="GAINERS", currency="usd")]'),  # no such parameter
            ("user", "Losers?"),
            ("assistant", '[Market Trends API(trend_type="LOSERS")]'),
        ],
    )
    counts = import_file(project=project, path=write_jsonl(tmp_path / "t.jsonl", [broken]), fmt="toolace")
    assert counts.created == 1 and counts.call_turns == 3
    assert counts.skipped == {
        "the reference answer does not fit its tools' schemas (missing param)": 1,
        "the reference answer does not fit its tools' schemas (unexpected param)": 1,
        "a text answer after tool results (the answer that closes a call)": 1,
    }


def test_import_data_prints_the_turn_counts(tmp_path, db, capsys):
    call_command(
        "import_data",
        str(write_jsonl(tmp_path / "t.jsonl", [FINANCE, SPORTS])),
        "--format",
        "toolace",
        "--project",
        "cli",
    )
    out = capsys.readouterr().out
    assert "2 records read: 5 queries created" in out
    assert "assistant turns: 4 with calls, 5 without; 4 skipped (3 a text answer after tool results" in out


def test_reimport_changes_nothing(project, tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [FINANCE, SPORTS])
    import_file(project=project, path=path, fmt="toolace")
    again = import_file(project=project, path=path, fmt="toolace")
    assert (again.created, again.unchanged) == (0, 5)


# --- bad records: the line and field named, nothing written ----------------------------------------------


def broken_list_record():
    record = toolace([MARKET], [("user", "Trends?"), ("assistant", '[Market Trends API(trend_type="GAINERS")]')])
    record["system"] = record["system"].replace('"description": "Trend type."', '"description": "Trend type.",,')
    return record


@pytest.mark.parametrize(
    "bad, field, message",
    [
        (broken_list_record(), "system", "the tool list does not parse as JSON"),
        (
            {"system": "You are a helpful assistant. Tools:\nmarket_trends: get trends", "conversations": []},
            "system",
            "no JSON list of tools",
        ),
        (
            toolace([MARKET], [("user", "Filings?"), ("assistant", '[SEC Filings(identifier="AAPL")]')]),
            "conversations[1].value",
            "calls 'SEC Filings', which the record does not offer (offered: Market Trends API)",
        ),
        (
            toolace([MARKET], [("user", "Trends?"), ("assistant", '[Market Trends API(trend_type="GAINERS"]')]),
            "conversations[1].value",
            "not a valid call list",
        ),
        (toolace([MARKET], [("user", "Trends?"), ("robot", "beep")]), "conversations[1].from", "unknown speaker"),
        (toolace([MARKET], [("user", "Trends?")]), "conversations", "no assistant turn"),
    ],
)
def test_bad_record_names_line_and_field_and_writes_nothing(project, tmp_path, bad, field, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [FINANCE, bad])
    with pytest.raises(RecordError) as info:
        import_file(project=project, path=path, fmt="toolace")
    assert (info.value.line, info.value.field) == (2, field)
    assert message in info.value.message
    assert Query.objects.count() == Tool.objects.count() == QueryTool.objects.count() == 0
