"""Selection and GRPO score with the checker's strict rule: a broken call attempt on a query where no call is
right fails (pass rate 0, reward −1) instead of passing as a right "no call" (BFCL's lenient rule)."""

import dataclasses

import pytest

from apps.catalog.models import Query
from apps.catalog.services import records_write
from apps.training.models import Checkpoint, RoundQuery
from apps.training.policy import query_tools
from apps.training.services import round_create
from apps.training.stages import select as select_stage
from apps.training.stages.select import round_select
from apps.training.stages.train import reward_spec
from rewards.checker import Checker
from tests.factories import AnsweringBackend
from workers.select import SelectionConfig, pass_rates
from workers.train.job import reward_from_spec

BROKEN = "[get_order_status(user_id=2084061', order_id='ORD-1')]"
REFUSAL = "Sorry, none of the available tools can help with that."


@pytest.fixture
def queries(project):
    from apps.catalog.environment import EnvironmentConfig, generate_environment

    generated = generate_environment(EnvironmentConfig(seed=3, queries=24)).queries
    records_write(
        project=project,
        records=[dataclasses.replace(q, split="train") for q in generated],
        source="generated",
        split="train",
    )
    rows = list(Query.objects.filter(project=project).prefetch_related("query_tools__tool").order_by("id"))
    assert any(not q.ground_truth for q in rows) and any(q.ground_truth for q in rows)
    return rows


def test_grpo_reward_of_a_broken_attempt_on_a_no_call_query_is_negative(queries):
    no_call = next(q for q in queries if q.kind == "irrelevance")
    reward = reward_from_spec(reward_spec("checker", no_call))
    assert reward(BROKEN) == -1.0 and reward(REFUSAL) == 1.0
    assert reward("[calculate(x=") == -1.0


def test_pass_rate_selection_counts_a_broken_attempt_as_a_failure(queries):
    no_call = [q for q in queries if not q.ground_truth]
    checkers = [Checker(q.ground_truth, query_tools(q)) for q in no_call]
    config = SelectionConfig(method="pass_rate", k=2)
    assert pass_rates(AnsweringBackend(lambda p: BROKEN), ["p"] * len(no_call), checkers, config) == [0.0] * len(
        no_call
    )
    assert pass_rates(AnsweringBackend(lambda p: REFUSAL), ["p"] * len(no_call), checkers, config) == [1.0] * len(
        no_call
    )


def test_round_select_scores_broken_attempts_on_no_call_queries_zero(queries, project, tiny_model_dir, monkeypatch):
    policy = Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    rnd = round_create(project=project, policy=policy, selection={"method": "pass_rate", "k": 2, "threshold": 0.5})
    monkeypatch.setattr(select_stage, "policy_backend", lambda checkpoint: AnsweringBackend(lambda p: BROKEN))
    round_select(round_id=rnd.pk)
    scored = {rq.query_id: rq for rq in RoundQuery.objects.filter(round=rnd)}
    no_call = [q for q in queries if not q.ground_truth and q.ground_truth is not None]
    assert no_call and all(scored[q.pk].score == 0.0 and scored[q.pk].selected for q in no_call)
