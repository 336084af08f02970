"""Call names that are no Python name (ToolACE's `Market Trends API`): read where an offered tool has the name,
with spans on the original text; plain names and prose read exactly as before."""

import pytest

from rewards.checker import Checker, check
from rewards.parsing import call_names, parse_output

# names as real ToolACE records carry them
NAMES = (
    "Get Manager Placeholder Image",
    "GetCompetitions",
    "Market Trends API",
    "API",
    "SEC Filings",
    "United States Away from Home Mobility API",
    "Detrended Price Oscillator (DPO)",
    "Get Agent's Active Listings",
    "products/list",
    "news/get-categories",
    "Q&A Notifications",
    "M4.5+ Earthquakes, Past 7 Days",
    "Convertir cantidad a letra Moneda MXN Español",
)


def tool(name: str, **props) -> dict:
    properties = {
        p: {"type": kind, **({"default": default} if default is not None else {})}
        for p, (kind, default) in props.items()
    }
    return {
        "name": name,
        "description": f"{name}.",
        "parameters": {"type": "dict", "properties": properties, "required": [next(iter(props))] if props else []},
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '[Get Manager Placeholder Image(sport="football")]',
            [("Get Manager Placeholder Image", {"sport": "football"})],
        ),
        (
            '[SEC Filings(identifier="AAPL"), United States Away from Home Mobility API(string="2025-05-17")]',
            [
                ("SEC Filings", {"identifier": "AAPL"}),
                ("United States Away from Home Mobility API", {"string": "2025-05-17"}),
            ],
        ),
        (
            '[Detrended Price Oscillator (DPO)(symbol="BTC", period=14)]',
            [("Detrended Price Oscillator (DPO)", {"symbol": "BTC", "period": 14})],
        ),
        ("[Get Agent's Active Listings(agent_id='a-1')]", [("Get Agent's Active Listings", {"agent_id": "a-1"})]),
        (
            "[products/list(page=1), news/get-categories()]",
            [("products/list", {"page": 1}), ("news/get-categories", {})],
        ),
        (
            '[Q&A Notifications(user="x"), M4.5+ Earthquakes, Past 7 Days()]',
            [("Q&A Notifications", {"user": "x"}), ("M4.5+ Earthquakes, Past 7 Days", {})],
        ),
        (
            '[Convertir cantidad a letra Moneda MXN Español(moneda="MXN", monto="10")]',
            [("Convertir cantidad a letra Moneda MXN Español", {"moneda": "MXN", "monto": "10"})],
        ),
        ('Market Trends API(trend_type="GAINERS")', [("Market Trends API", {"trend_type": "GAINERS"})]),  # a bare call
        # the longest offered name wins; an offered name inside a string argument is left alone
        (
            '[Market Trends API(trend_type="X"), API(q="SEC Filings(identifier=1)")]',
            [("Market Trends API", {"trend_type": "X"}), ("API", {"q": "SEC Filings(identifier=1)"})],
        ),
        (
            '[GetCompetitions(), SEC Filings(identifier="MSFT", nested=[1, (2, 3)], opts={"a": "b, c"})]',
            [
                ("GetCompetitions", {}),
                ("SEC Filings", {"identifier": "MSFT", "nested": [1, [2, 3]], "opts": {"a": "b, c"}}),
            ],
        ),
    ],
)
def test_offered_names_parse_as_calls(text, expected):
    result = parse_output(text, NAMES)
    assert result.status == "calls" and result.format == "python"
    assert [(c.name, c.as_json()["arguments"]) for c in result.calls] == expected


def test_without_the_offered_names_such_text_is_no_call_as_before():
    assert parse_output('[Get Manager Placeholder Image(sport="football")]').status == "no_call"


def test_spans_point_into_the_original_text():
    text = '  [SEC Filings(identifier="AAPL"), Convertir cantidad a letra Moneda MXN Español(monto="10")]'
    first, second = parse_output(text, NAMES).calls
    assert text[slice(*first.span)] == 'SEC Filings(identifier="AAPL")'
    assert text[slice(*first.arg_spans["identifier"])] == '"AAPL"'
    assert text[slice(*second.span)] == 'Convertir cantidad a letra Moneda MXN Español(monto="10")'
    assert text[slice(*second.arg_spans["monto"])] == '"10"'


def test_an_unoffered_name_with_spaces_is_a_call_to_that_name():
    result = parse_output('[Market Trend API(trend_type="X")]', NAMES)  # misspelt: no such tool
    assert [c.name for c in result.calls] == ["Market Trend API"]
    assert [c.name for c in parse_output("[Weather Now()]", NAMES).calls] == ["Weather Now"]


def test_parameters_named_like_python_keywords():
    names = call_names(["Financial Fundamentals API", "shareuid", "from", "to", "start date"])
    text = '[Financial Fundamentals API(shareuid=6789, from="2025-01-01", to="2025-12-31", start date=1)]'
    (call,) = parse_output(text, names).calls
    assert call.arguments == {"shareuid": 6789, "from": "2025-01-01", "to": "2025-12-31", "start date": 1}
    assert text[slice(*call.arg_spans["from"])] == '"2025-01-01"'
    assert parse_output('[get_news(from="x")]').status == "malformed"  # without the names: as before
    assert parse_output('[get_news(from="x", page=2)]', ["get_news", "from", "page"]).calls[0].arguments == {
        "from": "x",
        "page": 2,
    }


@pytest.mark.parametrize(
    "text",
    [
        '[Market Trends API(trend_type="X"]',  # a broken attempt at an offered tool
        '[Market Trends API(trend_type="X")] and some prose',
        '[Market Trends API(trend_type="X", country=)]',
    ],
)
def test_a_broken_call_to_an_offered_name_is_malformed(text):
    result = parse_output(text, NAMES)
    assert result.status == "malformed" and result.span is not None


@pytest.mark.parametrize(
    "text",
    [
        "It is sunny.",
        "I (the assistant) cannot help with that.",
        "[Note (see above)]",
        "[1, 2, 3]",
        "Sorry, the Market Trends API cannot tell you that.",
        "[get_weather(city='Paris')]",
        "[math.factorial(number=5)]",
        '{"name": "Market Trends API", "arguments": {"trend_type": "X"}}',
        "[Market Trends API is down]",
        "Some words (and more) here",
        # prose that opens with a tool's name, or with words, and a parenthesis
        "SEC Filings (the documents companies file) are public.",
        "Market Trends API (my favourite) is down",
        "I cannot help (sorry)",
        "Thanks a lot (really)",
        "[Market Trends API (see above)]",
    ],
)
def test_other_text_reads_as_without_names(text):
    with_names, without = parse_output(text, NAMES), parse_output(text)
    assert (with_names.status, with_names.error, with_names.span) == (without.status, without.error, without.span)
    assert [c.as_json() for c in with_names.calls] == [c.as_json() for c in without.calls]


def test_plain_names_need_no_swap():
    assert call_names(["get_weather", "math.factorial", "Market Trends API", "class", "f-g"]) == (
        "Market Trends API",
        "class",
        "f-g",
    )
    assert call_names([]) == ()


# --- the checker with such names ------------------------------------------------------------------

MARKET = tool("Market Trends API", trend_type=("string", None), country=("string", "us"))
IMAGE = tool("Get Manager Placeholder Image", sport=("string", None))
TOOLS = [MARKET, IMAGE, tool("GetCompetitions")]


def test_checker_reads_spaced_names():
    truth = [{"Get Manager Placeholder Image": {"sport": ["football"]}}]
    verdict = check('[Get Manager Placeholder Image(sport="football")]', truth, TOOLS)
    assert verdict.valid, verdict.detail
    assert verdict.calls == [{"name": "Get Manager Placeholder Image", "arguments": {"sport": "football"}}]


def test_checker_names_each_mistake_with_spaced_names():
    truth = [{"Market Trends API": {"trend_type": ["GAINERS"], "country": ["", "us"]}}]
    checker = Checker(truth, TOOLS)
    assert checker('[Market Trends API(trend_type="GAINERS", country="us")]').valid  # the documented default
    assert checker('[Market Trends API(trend_type="GAINERS")]').valid
    wrong = checker('[Market Trends API(trend_type="LOSERS")]')
    assert wrong.deficiency == "wrong_value"
    text = '[Market Trends API(trend_type="LOSERS")]'
    assert text[slice(*wrong.span)] == '"LOSERS"'
    assert checker('[Get Manager Placeholder Image(sport="x")]').deficiency == "wrong_function"
    assert checker('[Market Trend API(trend_type="GAINERS")]').deficiency == "wrong_function"
    assert checker('[Market Trends API(trend_type="GAINERS"]').deficiency == "malformed"
    both = '[Market Trends API(trend_type="GAINERS"), GetCompetitions()]'
    assert checker(both).deficiency == "extra_call"


def test_checker_on_a_no_call_query_sees_a_spaced_call():
    verdict = check('[GetCompetitions(), Market Trends API(trend_type="X")]', [], TOOLS)
    assert verdict.deficiency == "call_on_irrelevant"
    assert check("Manager images matter for branding.", [], TOOLS).valid
