"""Evaluation metrics on known answers: pass rate per kind, deficiency histogram, mean reward and Solve-F1
(the answers' calls run for real in the sandbox)."""
import pytest

from apps.rewards.checker import Checker
from apps.rewards.execution import Solver, solver_for
from apps.rewards.sandbox import SandboxLimits
from workers.evaluation import evaluate
from workers.llm.base import BaseBackend, Sample

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
IMPLEMENTATIONS = {"get_weather": "def get_weather(city):\n    return {'city': city, 'temp': len(city) * 3}\n"}
FAST = SandboxLimits(cpu_seconds=1, wall_seconds=3)


class Answers(BaseBackend):
    """Answers each prompt with the text given for it (what a greedy policy would say)."""

    name = "answers"

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.batches: list[int] = []

    def generate(self, prompts, params):
        self.batches.append(len(prompts))
        return [[Sample(text=self.answers[p], finish_reason="stop")] for p in prompts]


def _solver(sub_answers):
    return Solver(IMPLEMENTATIONS, sub_answers, FAST)


def test_pass_rate_by_kind_deficiencies_and_solve_f1():
    paris = [{"get_weather": {"city": ["Paris"]}}]
    prompts = ["p1", "p2", "p3", "p4", "p5"]
    answers = {
        "p1": "[get_weather(city='Paris')]",  # right: passes, finds Paris's 15 degrees
        "p2": "[get_weather(city='Lyon')]",  # wrong value: fails, finds nothing (Lyon gives 12)
        "p3": "[get_weather(city='Paris'",  # malformed: fails, F1 0
        "p4": "I cannot help with that.",  # irrelevance, no call: passes, F1 1 (nothing to find)
        "p5": "[get_weather(city='Paris')]",  # right, but no solver (tools not executable): no F1
    }
    checkers = [Checker(paris, [WEATHER])] * 3 + [Checker([], [WEATHER]), Checker(paris, [WEATHER])]
    kinds = ["single", "single", "single", "irrelevance", "single"]
    solvers = [_solver({"get_weather": ["15"]})] * 3 + [_solver({}), None]
    backend = Answers(answers)
    metrics = evaluate(backend, prompts, checkers, kinds, solvers=solvers)
    assert metrics["n"] == 5
    assert metrics["pass_rate"] == pytest.approx(3 / 5)
    assert metrics["by_kind"]["single"]["pass_rate"] == pytest.approx(2 / 4)
    assert metrics["by_kind"]["irrelevance"]["pass_rate"] == 1.0
    assert sum(metrics["deficiencies"].values()) == 2
    assert metrics["deficiencies"].get("malformed") == 1
    assert metrics["solve_n"] == 4
    assert metrics["solve_f1"] == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert metrics["by_kind"]["single"]["solve_f1"] == pytest.approx(1 / 3)
    assert metrics["by_kind"]["irrelevance"]["solve_f1"] == 1.0


def test_without_solvers_there_is_no_solve_f1():
    metrics = evaluate(Answers({"p": "[get_weather(city='Paris')]"}), ["p"],
                       [Checker([{"get_weather": {"city": ["Paris"]}}], [WEATHER])], ["single"])
    assert metrics["pass_rate"] == 1.0
    assert "solve_f1" not in metrics and "solve_f1" not in metrics["by_kind"]["single"]


def test_solver_scores_calls_it_ran():
    solver = _solver({"get_weather": ["15", "12"]})  # two sub-answers: Paris (15) and Lyon (12)
    both = solver("[get_weather(city='Paris'), get_weather(city='Lyon')]")
    assert (both.solved, both.calls, both.total, both.f1) == (2, 2, 2, 1.0)
    one = solver("[get_weather(city='Paris'), get_weather(city='Rome')]")  # Rome gives 12 as well: solves Lyon's
    assert one.solved == 2
    half = solver("[get_weather(city='Paris')]")
    assert (half.solved, half.calls, half.f1) == (1, 1, pytest.approx(2 / 3))
    assert half.step_reward == pytest.approx(1.0)  # FTRL's step reward: 2·1 / (1 + 1)
    unknown = solver("[get_time(city='Paris')]")  # a tool the query does not offer runs as an error
    assert (unknown.solved, unknown.calls, unknown.f1) == (0, 1, 0.0)
    assert solver.sub_answers == {"get_weather": ["15", "12"]}, "scoring leaves the query's sub-answers alone"


class _Tool:
    def __init__(self, name, implementation):
        self.name, self.implementation = name, implementation


def test_solver_for_needs_implementations_and_sub_answers():
    assert solver_for([_Tool("get_weather", IMPLEMENTATIONS["get_weather"])], {"get_weather": ["15"]}) is not None
    assert solver_for([_Tool("get_weather", "")], {"get_weather": ["15"]}) is None
    assert solver_for([_Tool("get_weather", IMPLEMENTATIONS["get_weather"])], None) is None
    assert solver_for([], {"get_weather": ["15"]}) is None


def test_pass_rate_per_bfcl_category_for_the_queries_that_have_one():
    answers = {"a": "[get_weather(city='Paris')]", "b": "[get_weather(city='Rome')]", "c": "[get_weather(city='Paris')]"}
    checker = Checker([{"get_weather": {"city": ["Paris"]}}], [WEATHER])
    metrics = evaluate(Answers(answers), ["a", "b", "c"], [checker] * 3, ["single"] * 3,
                       categories=["simple_python", "simple_python", None])
    assert metrics["by_category"] == {"simple_python": {"n": 2, "pass_rate": 0.5}}
    assert metrics["pass_rate"] == pytest.approx(2 / 3)
    assert "by_category" not in evaluate(Answers(answers), ["a"], [checker], ["single"], categories=[None])
