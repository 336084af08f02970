"""The parser: every format people use, spans that point at the text, and no exception on any input."""

import json

import pytest

from rewards.parsing import parse_output, render_call_list

CALL = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("[get_weather(city='Paris', days=3)]", "python"),
        ("get_weather(city='Paris', days=3)", "python"),
        ("```python\n[get_weather(city='Paris', days=3)]\n```", "python"),
        (json.dumps(CALL), "json"),
        (json.dumps([CALL]), "json"),
        (json.dumps({"name": "get_weather", "arguments": json.dumps(CALL["arguments"])}), "json"),
        (json.dumps({"name": "get_weather", "parameters": CALL["arguments"]}), "json"),
        ("<tool_call>\n" + json.dumps(CALL) + "\n</tool_call>", "tool_call_tag"),
        (
            json.dumps(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": json.dumps(CALL["arguments"])},
                        }
                    ],
                }
            ),
            "openai",
        ),
    ],
)
def test_formats_give_the_same_call(text, fmt):
    result = parse_output(text)
    assert result.status == "calls" and result.format == fmt
    assert [c.as_json() for c in result.calls] == [CALL]


def test_structured_message_is_accepted_as_is():
    message = {"tool_calls": [{"function": {"name": "get_weather", "arguments": CALL["arguments"]}}]}
    assert [c.as_json() for c in parse_output(message).calls] == [CALL]


def test_dotted_names_nested_literals_and_parallel_calls():
    text = "[math.factorial(number=5), geo.route(points=[(1, 2), (3.5, -4)], opts={'avoid': ['tolls']}, fast=True)]"
    calls = parse_output(text).calls
    assert [c.name for c in calls] == ["math.factorial", "geo.route"]
    assert calls[1].as_json()["arguments"] == {
        "points": [[1, 2], [3.5, -4]],
        "opts": {"avoid": ["tolls"]},
        "fast": True,
    }


def test_spans_point_at_calls_and_arguments():
    text = "  [get_weather(city='Paris', days=3), get_time(tz='Europe/Paris')]"
    first, second = parse_output(text).calls
    assert text[slice(*first.span)] == "get_weather(city='Paris', days=3)"
    assert text[slice(*first.arg_spans["days"])] == "3"
    assert text[slice(*second.arg_spans["tz"])] == "'Europe/Paris'"
    tagged = '<tool_call>{"name": "f", "arguments": {"city": "Paris"}}</tool_call>'
    (call,) = parse_output(tagged).calls
    assert tagged[slice(*call.arg_spans["city"])] == '"city": "Paris"'


def test_non_ascii_spans():
    text = "[translate(text='café crème', lang='日本語')]"
    (call,) = parse_output(text).calls
    assert text[slice(*call.arg_spans["lang"])] == "'日本語'"


@pytest.mark.parametrize(
    "text",
    [
        "It is sunny in Paris.",
        "",
        "   ",
        "[1, 2, 3]",
        "I'd call get_weather for that",
        # the demo environment's refusals, and sentences that only open like a call (a word, a space, a parenthesis
        # with no `=`): prose, so the checker's strict rule does not score them as broken call attempts
        "Sorry, none of the available tools can help with that.",
        "I can't do that with the tools I have, sorry.",
        "I (the assistant) cannot help with that.",
        "Unfortunately (as far as I know) no tool fits",
    ],
)
def test_prose_is_no_call(text):
    assert parse_output(text).status == "no_call"


@pytest.mark.parametrize(
    "text",
    [
        "[get_order_status(user_id=2084061', order_id='ORD-1')]",  # a broken attempt seen in a demo tree
        "[get_order_status(user_id=",
        "calculate_tip(bill=12.0, tip_percent=20.0, people=7), getI can't do that",
        "get_weather (city='Paris'",  # a space before the parenthesis, but an argument: still an attempt
        "Sorry(I cannot)",
    ],
)
def test_broken_call_attempts_are_malformed(text):
    assert parse_output(text).status == "malformed"


@pytest.mark.parametrize(
    "text, where",
    [
        ("[get_weather(city='Paris'", "("),
        ('{"name": "f", "arguments": {"a": 1}', None),
        ('<tool_call>{"name": "f"}', "<"),
        ('<tool_call>{"name": "f", </tool_call>', None),
        ('{"name": "f", "arguments": "{not json"}', None),
        ("[get_weather(city=os.environ)]", "os.environ"),
    ],
)
def test_malformed_calls_are_reported_with_a_span(text, where):
    result = parse_output(text)
    assert result.status == "malformed" and result.error
    assert result.span is not None and 0 <= result.span[0] <= len(text)
    if where:
        assert text[result.span[0] :].startswith(where)


def test_values_resolved_like_bfcl():
    (call,) = parse_output("[f(a=some_var, b=2*3, c=-1.5, d=g(), e=...)]").calls
    assert call.arguments == {"a": "some_var", "b": 6, "c": -1.5, "d": "g()", "e": "..."}
    # arithmetic is bounded rather than evaluated blindly
    (call,) = parse_output("[f(a=10**100000)]").calls
    assert call.arguments == {"a": "10 ** 100000"}


def test_render_round_trips():
    calls = [CALL, {"name": "m.g", "arguments": {"flag": False, "xs": [1, "a"]}}]
    assert [c.as_json() for c in parse_output(render_call_list(calls)).calls] == calls


def test_repeated_json_calls_get_their_own_spans():
    text = json.dumps([{"name": "f", "arguments": {"a": 1}}, {"name": "f", "arguments": {"a": 2}}])
    first, second = parse_output(text).calls
    assert first.span != second.span
    assert text[slice(*second.arg_spans["a"])] == '"a": 2'


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rewards.parsing import parse_python_calls  # noqa: E402
from rewards.parsing.scanner import _fast_calls  # noqa: E402

_piece = st.sampled_from(
    [
        "[",
        "]",
        "f",
        "g.h",
        "class",
        "(",
        ")",
        "a",
        "b",
        "=",
        ",",
        " ",
        "lambda",
        "var",
        "x.y",
        "'x y'",
        '"it\'s"',
        "'a\\'b'",
        "1",
        "-2",
        "007",
        "3.25",
        "1e5",
        "1_0",
        "True",
        "None",
        "Truex",
        "[1]",
        "{}",
        "\n",
        "é",
        "x",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_piece, max_size=14).map("".join))
def test_fast_scanner_reads_exactly_what_the_parser_reads(text):
    body = text.strip()
    if not body or _fast_calls(body, 0) is None:
        return
    fast = parse_python_calls(body)
    slow = parse_python_calls(body, fast=False)
    assert [(c.name, c.arguments, c.span, c.arg_spans) for c in fast] == [
        (c.name, c.arguments, c.span, c.arg_spans) for c in slow
    ]
    assert all(
        type(a) is type(b) for f, s in zip(fast, slow) for a, b in zip(f.arguments.values(), s.arguments.values())
    )


def test_fast_scanner_covers_the_common_case():
    assert _fast_calls("[get_weather(city='Paris', days=3), get_time(tz=\"UTC\", dst=False)]", 0) is not None
    assert _fast_calls("[f(a=[1, 2], b=some_var)]", 0) is not None
    for text in [
        "[f(a=[[1, 2]])]",
        "[f(a={1: 2})]",
        "[f(a=lambda)]",
        "[f(a='it\\'s')]",
        "[f(class=1)]",
        "[f(a=1, a=2)]",
        "[f(a=007)]",
    ]:
        assert _fast_calls(text, 0) is None, text  # left to Python's parser


def test_sampled_text_that_python_warns_about_parses_quietly():
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert parse_output("[get(city='Paris', n=3if)]").status == "malformed"  # "invalid decimal literal"
        assert parse_output("[f(a=0x1for)]").status == "malformed"  # "invalid hexadecimal literal"
    assert not [w for w in seen if issubclass(w.category, SyntaxWarning)]
