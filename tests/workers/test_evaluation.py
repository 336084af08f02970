"""Evaluation metrics on known answers: strict and BFCL-rule pass rate per kind and per kind group,
over-refusal, deficiency histogram, mean reward, Solve-F1 (the answers' calls run for real in the sandbox),
and the per-query records."""

import json

import pytest

from rewards.checker import Checker
from rewards.execution import Solver, solver_for
from rewards.sandbox import SandboxLimits
from workers.evaluation import EvalConfig, EvalRecord, evaluate
from workers.llm.base import BaseBackend, Sample

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
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
    metrics = evaluate(backend, prompts, checkers, kinds, solvers=solvers).metrics
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
    metrics = evaluate(
        Answers({"p": "[get_weather(city='Paris')]"}),
        ["p"],
        [Checker([{"get_weather": {"city": ["Paris"]}}], [WEATHER])],
        ["single"],
    ).metrics
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
    answers = {
        "a": "[get_weather(city='Paris')]",
        "b": "[get_weather(city='Rome')]",
        "c": "[get_weather(city='Paris')]",
    }
    checker = Checker([{"get_weather": {"city": ["Paris"]}}], [WEATHER])
    metrics = evaluate(
        Answers(answers),
        ["a", "b", "c"],
        [checker] * 3,
        ["single"] * 3,
        categories=["simple_python", "simple_python", None],
    ).metrics
    assert metrics["by_category"] == {"simple_python": {"n": 2, "pass_rate": 0.5, "pass_rate_bfcl": 0.5}}
    assert metrics["pass_rate"] == pytest.approx(2 / 3)
    assert "by_category" not in evaluate(Answers(answers), ["a"], [checker], ["single"], categories=[None]).metrics


PARIS = [{"get_weather": {"city": ["Paris"]}}]
BROKEN = "[get_order_status(user_id=2084061', order_id='ORD-1')]"


def test_strict_and_bfcl_pass_rates_over_refusal_groups_and_records():
    # (kind, ground truth, answer)
    cases = [
        ("single", PARIS, "[get_weather(city='Paris')]"),  # right
        ("single", PARIS, "Sorry, none of the available tools can help with that."),  # over-refusal
        ("multiple", PARIS, "[get_weather(city='Lyon')]"),  # wrong value
        ("parallel", PARIS, "I can't do that with the tools I have, sorry."),  # over-refusal
        ("multi_hop", PARIS, "[get_weather(city='Paris'"),  # malformed: not a refusal
        ("irrelevance", [], BROKEN),  # strict: malformed; BFCL: right
        ("irrelevance", [], "Sorry, none of the available tools can help with that."),  # right by both rules
        ("irrelevance", [], "[get_weather(city='Paris')]"),  # a call where none is right
    ]
    prompts = [f"p{i}" for i in range(len(cases))]
    evaluation = evaluate(
        Answers({p: c[2] for p, c in zip(prompts, cases)}),
        prompts,
        [Checker(truth, [WEATHER]) for _, truth, _ in cases],
        [c[0] for c in cases],
    )
    m = evaluation.metrics
    assert m["n"] == 8 and m["call_n"] == 5
    assert m["pass_rate"] == pytest.approx(2 / 8) and m["pass_rate_bfcl"] == pytest.approx(3 / 8)
    assert m["over_refusal"] == pytest.approx(2 / 5)  # no call on 2 of the 5 call queries; malformed is not one
    assert m["by_kind"]["irrelevance"] == {
        "n": 3,
        "pass_rate": pytest.approx(1 / 3),
        "pass_rate_bfcl": pytest.approx(2 / 3),
    }  # no over-refusal there
    assert m["by_kind"]["single"] == {"n": 2, "pass_rate": 0.5, "pass_rate_bfcl": 0.5, "over_refusal": 0.5}
    assert m["by_kind"]["parallel"]["over_refusal"] == 1.0 and m["by_kind"]["multi_hop"]["over_refusal"] == 0.0
    assert m["groups"]["call_kinds"] == {"n": 5, "pass_rate": 0.2, "pass_rate_bfcl": 0.2, "over_refusal": 0.4}
    assert m["groups"]["three_kinds"] == {"n": 4, "pass_rate": 0.25, "pass_rate_bfcl": 0.25, "over_refusal": 0.5}
    assert m["deficiencies"] == {"no_call": 2, "malformed": 2, "wrong_value": 1, "call_on_irrelevant": 1}
    assert "records" not in m and json.loads(json.dumps(m)) == m  # what an EvalRun stores: figures only

    records = evaluation.records
    assert [r.index for r in records] == list(range(8)) and all(isinstance(r, EvalRecord) for r in records)
    gamed = records[5]
    assert (gamed.kind, gamed.output, gamed.valid, gamed.valid_bfcl, gamed.deficiency) == (
        "irrelevance",
        BROKEN,
        False,
        True,
        "malformed",
    )
    assert gamed.reward == -1.0 and "no call was expected" in gamed.detail and not gamed.expects_call
    assert (records[1].deficiency, records[1].expects_call, records[1].valid_bfcl) == ("no_call", True, False)
    assert records[0].valid and records[0].deficiency == "" and records[0].reward == 1.0
    assert records[2].deficiency == "wrong_value" and "Lyon" in records[2].detail


def test_no_queries_no_figures():
    evaluation = evaluate(Answers({}), [], [], [])
    assert evaluation.records == []
    assert evaluation.metrics["n"] == 0 and evaluation.metrics["over_refusal"] is None
    assert evaluation.metrics["groups"] == {} and evaluation.metrics["by_kind"] == {}


def test_progress_counts_the_prompts_answered_so_far():
    checker = Checker([], [WEATHER])
    seen = []
    evaluate(
        Answers({"a": "no", "b": "no", "c": "no"}),
        ["a", "b", "c"],
        [checker] * 3,
        ["irrelevance"] * 3,
        EvalConfig(batch_size=2),
        progress=seen.append,
    )
    assert seen == [{"done": 2, "total": 3}, {"done": 3, "total": 3}]
