"""FTRL's execution reward: answer verification, Solve-P/R/F1 and the step reward, and a turn run for real."""

import pytest

from rewards.execution import SolveScore, execute_turn, solve_score, verify_answer
from rewards.sandbox import CallOutcome, SandboxLimits

FAST = SandboxLimits(cpu_seconds=1, wall_seconds=2)


def ok(name: str, output: str) -> CallOutcome:
    return CallOutcome(name=name, ok=True, output=output)


def failed(name: str, error: str) -> CallOutcome:
    return CallOutcome(
        name=name, ok=False, output=f"an error occurred when calling {name}: {error}", error=error, reason="exception"
    )


@pytest.mark.parametrize(
    "output, answer, expected",
    [
        ('{"city": "Paris, France", "temp": 21}', "Paris, 21", True),  # every ", " part occurs
        ('{"city": "Paris, France", "temp": 21}', "Paris, 22", False),  # one part missing
        ("PARIS", "paris", True),  # case ignored
        ("Total: 1,000 EUR", "1000", True),  # commas ignored on both sides
        ("Total: 1000 EUR", "1,000", True),
        ("ab", "a,b", True),  # only ", " splits; a bare comma is dropped
        ({"sky": "ciel dégagé"}, "dégagé", True),  # dicts compared as JSON, non-ASCII kept
        (["Lyon", "Nice"], "nice, lyon", True),  # lists too; order of parts does not matter
        (42, "42", True),  # anything else as str()
        ("  padded  ", " padded ", True),  # parts stripped
    ],
)
def test_verify_answer_follows_ftrl(output, answer, expected):
    assert verify_answer(output, answer) is expected


def test_worked_example_of_every_formula():
    outcomes = [
        ok("get_weather", '{"temp": 21}'),  # solves get_weather's "21"
        ok("get_weather", '{"temp": 21}'),  # nothing left for get_weather: an answer is solved once
        ok("get_city", "Paris"),  # solves "Paris", not "Lyon"
        failed("get_city", "Lyon is unknown"),  # an error message solves nothing, even if it names an answer
    ]
    sub_answers = {"get_weather": ["21"], "get_city": ["Paris", "Lyon"]}
    score = solve_score(outcomes, sub_answers)
    assert (score.solved, score.calls, score.total) == (2, 4, 3)
    assert score.precision == pytest.approx(2 / 4)  # Solve-P = solved / calls
    assert score.recall == pytest.approx(2 / 3)  # Solve-R = solved / total
    assert score.f1 == pytest.approx(2 * 2 / (4 + 3))  # Solve-F1 = 2·solved / (calls + total)
    assert score.step_reward == pytest.approx(2 * 2 / (4 + 1))  # step reward = 2·solved / (calls + 1)
    assert score.unsolved == {"get_city": ["Lyon"]}
    assert sub_answers == {"get_weather": ["21"], "get_city": ["Paris", "Lyon"]}  # the caller's set is untouched


def test_each_answer_is_solved_at_most_once_but_duplicates_count_separately():
    twice = [ok("f", "x"), ok("f", "x")]
    assert solve_score(twice, {"f": ["x"]}).solved == 1
    assert solve_score(twice, {"f": ["x", "x"]}).solved == 2
    assert solve_score(twice, {"g": ["x"]}).solved == 0  # answers belong to their tool


def test_no_calls():
    score = solve_score([], {"f": ["x", "y"]})
    assert (score.precision, score.recall, score.f1, score.step_reward) == (1.0, 0.0, 0.0, 0.0)


def test_no_sub_answers():
    assert solve_score([], {}) == SolveScore(
        solved=0, calls=0, total=0, precision=1.0, recall=1.0, f1=1.0, step_reward=0.0
    )
    score = solve_score([ok("f", "x")], {})
    assert (score.precision, score.recall, score.f1, score.step_reward) == (0.0, 1.0, 0.0, 0.0)


def test_all_solved_with_one_call_each():
    score = solve_score([ok("f", "a"), ok("g", "b")], {"f": ["a"], "g": ["b"]})
    assert (score.precision, score.recall, score.f1) == (1.0, 1.0, 1.0)
    assert score.step_reward == pytest.approx(4 / 3)  # FTRL's step reward is not capped at 1


def test_execute_turn_runs_calls_and_returns_tool_messages():
    implementations = {
        "get_capital": "CAPITALS = {'France': 'Paris', 'Japan': 'Tokyo'}\n"
        "def get_capital(country):\n    return {'country': country, 'capital': CAPITALS[country]}",
        "get_population": "def get_population(city):\n    return {'Paris': '2,102,650'}[city]",
    }
    sub_answers = {"get_capital": ["Paris"], "get_population": ["2102650"]}
    calls = [
        {"id": "call_a", "name": "get_capital", "arguments": {"country": "France"}},
        {"name": "get_capital", "arguments": {"country": "Spain"}},
    ]

    outcomes, messages, score = execute_turn(implementations, calls, sub_answers, FAST)

    assert [o.ok for o in outcomes] == [True, False]
    assert messages == [
        {
            "role": "tool",
            "tool_call_id": "call_a",
            "name": "get_capital",
            "content": '{"country": "France", "capital": "Paris"}',
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "name": "get_capital",
            "content": "an error occurred when calling get_capital: KeyError: 'Spain'",
        },
    ]
    assert (score.solved, score.calls, score.total, score.step_reward) == (1, 2, 2, pytest.approx(2 / 3))

    # the next step of the rollout starts from what is still unsolved
    next_calls = [{"name": "get_population", "arguments": {"city": "Paris"}}]
    _, messages, next_score = execute_turn(implementations, next_calls, score.unsolved, FAST)
    assert messages[0]["content"] == "2,102,650"
    assert (next_score.solved, next_score.total, next_score.recall, next_score.unsolved) == (1, 1, 1.0, {})


def test_execute_turn_with_no_calls_runs_nothing():
    outcomes, messages, score = execute_turn({}, [], {"f": ["x"]}, FAST)
    assert (outcomes, messages, score.precision, score.step_reward) == ([], [], 1.0, 0.0)
