"""The generated environment's tools run in the sandbox, and their right calls solve the sub-answers."""

from apps.catalog.environment import EnvironmentConfig, generate_environment
from rewards.checker import check
from rewards.execution import execute_turn
from rewards.parsing import parse_output


def test_right_calls_solve_sub_answers_and_pass_the_checker():
    env = generate_environment(EnvironmentConfig(seed=3, queries=60))
    implementations = {t.name: t.implementation for t in env.tools}
    scored = 0
    for query in env.queries:
        if not query.ground_truth:
            continue
        tools = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in query.tools]
        assert check(query.reference_output, query.ground_truth, tools).valid, query.external_id
        if not query.sub_answers:
            continue
        calls = [c.as_json() for c in parse_output(query.reference_output).calls]
        outcomes, messages, score = execute_turn(implementations, calls, query.sub_answers)
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert [m["role"] for m in messages] == ["tool"] * len(calls)
        assert score.solved == score.total and score.recall == 1.0, (query.external_id, score)
        scored += 1
    assert scored >= 20
