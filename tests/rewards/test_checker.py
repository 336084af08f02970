"""Checker verdicts: each deficiency named, explained, located in the text, and graded."""

import json

import pytest

from rewards.checker import GRADE_WEIGHTS, Checker, check

WEATHER = {
    "name": "get_weather",
    "description": "Weather.",
    "parameters": {
        "type": "dict",
        "required": ["city"],
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string"},
            "scale": {"type": "float"},
            "coords": {"type": "tuple", "items": {"type": "float"}},
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
TOOLS = [WEATHER, TIME]
TRUTH = [{"get_weather": {"city": ["Paris", "Paris, France"], "days": [3], "unit": ["", "celsius"]}}]


def verdict(output, truth=TRUTH, tools=TOOLS):
    return check(output, truth, tools)


@pytest.mark.parametrize(
    "output, deficiency, offending",
    [
        ("[get_weather(city='paris france', days=3)]", "", None),  # BFCL string normalisation
        ("[get_weather(city='Paris', days=3, unit='celsius')]", "", None),
        ('{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}', "", None),
        ("The weather in Paris is nice.", "no_call", None),
        ("[get_weather(city='Paris', days=3", "malformed", None),
        ("[get_time(tz='Europe/Paris')]", "wrong_function", "get_time(tz='Europe/Paris')"),
        ("[get_weather(days=3)]", "missing_param", "get_weather(days=3)"),
        ("[get_weather(city='Paris')]", "missing_param", "get_weather(city='Paris')"),
        ("[get_weather(city='Paris', days=3, mood='happy')]", "unexpected_param", "'happy'"),
        ("[get_weather(city='Paris', days=3, scale=2)]", "unexpected_param", "2"),  # not in the answer
        ("[get_weather(city='Paris', days='3')]", "wrong_type", "'3'"),
        ("[get_weather(city='Paris', days=True)]", "wrong_type", "True"),
        ("[get_weather(city='Lyon', days=3)]", "wrong_value", "'Lyon'"),
        ("[get_weather(city='Paris', days=3), get_time(tz='UTC')]", "extra_call", "get_time(tz='UTC')"),
    ],
)
def test_deficiencies(output, deficiency, offending):
    v = verdict(output)
    assert v.deficiency == deficiency, v.detail
    assert v.valid is (deficiency == "")
    if offending:
        assert output[slice(*v.span)] == offending


def test_detail_reads_like_a_sentence():
    v = verdict("[get_weather(city='Lyon', days=3)]")
    assert v.detail == "get_weather: param 'city': got 'Lyon', expected one of ['Paris', 'Paris, France']"


def test_reward_orders_answers_by_how_close_they_are():
    rewards = [
        verdict(o).reward
        for o in (
            "[get_weather(city='Paris', days=3)]",  # right
            "[get_weather(city='Lyon', days=3)]",  # a wrong value
            "[get_weather(city='Paris', days='3')]",  # a wrong type
            "[get_weather(days=3)]",  # a missing parameter
            "[get_time(tz='UTC')]",  # the wrong function
            "no idea",  # no call
        )
    ]
    assert rewards == sorted(rewards, reverse=True) and rewards[0] == 1.0 and rewards[-1] == -1.0
    assert all(-1.0 <= r <= 1.0 for r in rewards)


def test_parallel_calls_any_order_and_partial_credit():
    truth = [{"get_time": {"tz": ["UTC"]}}, {"get_time": {"tz": ["Asia/Tokyo"]}}, {"get_weather": {"city": ["Oslo"]}}]
    right = "[get_weather(city='Oslo'), get_time(tz='Asia/Tokyo'), get_time(tz='UTC')]"
    assert verdict(right, truth).valid
    one_wrong = verdict("[get_weather(city='Oslo'), get_time(tz='Asia/Tokyo'), get_time(tz='Berlin')]", truth)
    two_wrong = verdict("[get_weather(city='Rome'), get_time(tz='Asia/Tokyo'), get_time(tz='Berlin')]", truth)
    assert one_wrong.deficiency == two_wrong.deficiency == "wrong_value"
    assert one_wrong.reward > two_wrong.reward > 0.2 - 1e-9
    missing = verdict("[get_time(tz='UTC'), get_time(tz='Asia/Tokyo')]", truth)
    assert missing.deficiency == "missing_call" and "expected 3 calls" in missing.detail


def test_irrelevance():
    assert verdict("None of the tools can do that.", truth=[]).valid
    v = verdict("[get_time(tz='UTC')]", truth=[])
    assert (v.valid, v.deficiency, v.reward) == (False, "call_on_irrelevant", -1.0)


BROKEN_ATTEMPTS = [
    "[get_order_status(user_id=2084061', order_id='ORD-1')]",  # leaves the demo's search scored 1.0
    "[get_time(tz=",
    '{"name": "get_time", "arguments": {"tz": "UTC"}',
]


@pytest.mark.parametrize("output", BROKEN_ATTEMPTS)
def test_strict_rule_scores_a_broken_attempt_on_a_no_call_query_as_malformed(output):
    strict = check(output, [], TOOLS)  # strict is the default
    assert (strict.valid, strict.deficiency, strict.reward) == (False, "malformed", -1.0)
    assert "no call was expected" in strict.detail and strict.grade == "poor"
    bfcl = check(output, [], TOOLS, rule="bfcl")  # BFCL's lenient irrelevance rule: not a call, so right
    assert (bfcl.valid, bfcl.deficiency, bfcl.reward) == (True, "", 1.0)


@pytest.mark.parametrize(
    "output",
    [
        "Sorry, none of the available tools can help with that.",
        "I can't do that with the tools I have, sorry.",
        "",
        "I (the assistant) cannot.",
    ],
)
def test_text_refusals_are_right_under_both_rules(output):
    assert check(output, [], TOOLS).valid and check(output, [], TOOLS, rule="bfcl").valid


def test_rules_differ_only_on_no_call_queries():
    for output in ("[get_weather(city='Paris', days=3", "The weather is fine.", "[get_weather(city='Lyon', days=3)]"):
        assert check(output, TRUTH, TOOLS).as_dict() == check(output, TRUTH, TOOLS, rule="bfcl").as_dict()


def test_one_checker_answers_by_either_rule_and_knows_whether_a_call_is_expected():
    checker = Checker([], TOOLS, rule="bfcl")
    assert checker(BROKEN_ATTEMPTS[0]).valid and not checker(BROKEN_ATTEMPTS[0], rule="strict").valid
    assert not checker.expects_call and Checker(TRUTH, TOOLS).expects_call
    assert not Checker([{"nope": {}}], TOOLS).expects_call  # unusable ground truth: bad_input, no call expected
    with pytest.raises(ValueError, match="unknown checker rule 'lenient'"):
        Checker([], TOOLS, rule="lenient")
    with pytest.raises(ValueError, match="unknown checker rule"):
        checker("x", rule="BFCL")


def test_int_for_float_and_tuple_for_tuple():
    truth = [{"get_weather": {"city": ["Paris"], "scale": [2.0], "coords": [[48.0, 2.5]]}}]
    assert verdict("[get_weather(city='Paris', scale=2, coords=(48.0, 2.5))]", truth).valid
    assert verdict("[get_weather(city='Paris', scale=2.0, coords=[48.0, 2.5])]", truth).valid
    v = verdict("[get_weather(city='Paris', scale=2.0, coords=['48', 2.5])]", truth)
    assert v.deficiency == "wrong_type"


def test_grades_follow_itool_levels():
    assert verdict("[get_weather(city='Paris', days=3)]").grade == "excellent"
    assert verdict("[get_weather(city='Lyon', days=3)]").grade == "acceptable"
    assert verdict("[get_weather(days=3)]").grade == "fair"
    assert verdict("[get_time(tz='UTC')]").grade == "poor"
    assert GRADE_WEIGHTS == {"excellent": 0.25, "acceptable": 0.025, "fair": -0.25, "poor": -0.5}


@pytest.mark.parametrize(
    "truth, tools, message",
    [
        ({"get_weather": {}}, TOOLS, "ground_truth: expected a list"),
        ([{"get_weather": {"city": "Paris"}}], TOOLS, "expected param → list"),
        ([{"a": {}, "b": {}}], TOOLS, "ground_truth[0]"),
        ([{"get_date": {"d": [1]}}], TOOLS, "not among the tools"),
        (TRUTH, "tools", "tools: expected a list"),
        (TRUTH, [{"description": "nameless"}], "tools[0].name"),
    ],
)
def test_bad_input_is_a_verdict(truth, tools, message):
    v = check("[get_weather(city='Paris', days=3)]", truth, tools)
    assert (v.valid, v.deficiency) == (False, "bad_input")
    assert message in v.detail


def test_verdict_is_json_serialisable():
    row = verdict("[get_weather(city=('Paris',), days=3)]").as_dict()
    assert json.loads(json.dumps(row))["calls"][0]["arguments"]["city"] == ["Paris"]
