"""Evaluation stores each eval query's answer and verdicts (EvalResult); a round reports every before → after
change with a paired bootstrap interval; run_round prints them. The real tiny model, and a scripted policy where
the figures must come out exactly."""

import dataclasses

import pytest
from django.core.management import call_command
from django.db import connection

from apps.catalog.models import Query
from apps.catalog.services import records_write
from apps.training.models import Checkpoint, EvalResult, EvalRun, TrainingRound
from apps.training.policy import query_prompt
from apps.training.selectors import eval_outcomes, eval_result_list
from apps.training.stages import evaluate as evaluate_stage
from apps.training.stages.evaluate import checkpoint_eval_run, round_evaluate
from tests.factories import AnsweringBackend

REFUSAL = "Sorry, none of the available tools can help with that."


@pytest.fixture
def eval_project(project, tiny_model_dir):
    from apps.catalog.environment import EnvironmentConfig, generate_environment

    generated = generate_environment(EnvironmentConfig(seed=3, queries=24)).queries
    records_write(
        project=project,
        records=[dataclasses.replace(q, split="eval") for q in generated],
        source="generated",
        split="eval",
    )
    assert Query.objects.filter(project=project, split="eval", kind="irrelevance").exists()
    before = Checkpoint.objects.create(project=project, name="before", path=str(tiny_model_dir), kind="tiny")
    after = Checkpoint.objects.create(
        project=project, name="after", path=str(tiny_model_dir), kind="tiny", parent=before
    )
    return project, before, after


def _evaluating_round(project, before, after) -> TrainingRound:
    return TrainingRound.objects.create(
        project=project, number=1, state="evaluating", policy_in=before, policy_out=after
    )


def test_every_eval_query_stored_with_its_verdicts(eval_project):
    project, policy, _ = eval_project
    run = checkpoint_eval_run(checkpoint=policy)
    queries = {q.pk: q for q in Query.objects.filter(project=project, split="eval")}
    results = list(EvalResult.objects.filter(eval_run=run))
    assert run.status == "done" and len(results) == run.n_queries == run.metrics["n"] == len(queries)
    assert {r.query_id for r in results} == set(queries)
    assert all(r.kind == queries[r.query_id].kind for r in results)
    # the stored rows are the figures' source: strict and BFCL-rule pass@1, deficiencies, over-refusal
    assert sum(r.valid for r in results) == round(run.metrics["pass_rate"] * len(results))
    assert sum(r.valid_bfcl for r in results) == round(run.metrics["pass_rate_bfcl"] * len(results))
    assert all(r.valid_bfcl for r in results if r.valid)  # BFCL's rule only ever passes more
    histogram = {}
    for r in results:
        if not r.valid:
            histogram[r.deficiency] = histogram.get(r.deficiency, 0) + 1
    assert histogram == run.metrics["deficiencies"]
    calls = [r for r in results if r.expects_call]
    assert len(calls) == run.metrics["call_n"] > 0
    assert run.metrics["over_refusal"] == pytest.approx(sum(r.deficiency == "no_call" for r in calls) / len(calls))
    assert all(r.expects_call == bool(queries[r.query_id].ground_truth) for r in results)
    assert "records" not in run.metrics
    assert eval_outcomes(eval_run=run) == {r.query_id: r.valid for r in results}


def test_same_policy_before_and_after_changes_nothing_with_no_spread(eval_project):
    project, before, after = eval_project  # the same model files: greedy answers are identical
    rnd = _evaluating_round(project, before, after)
    metrics = round_evaluate(round_id=rnd.pk)
    rnd.refresh_from_db()
    assert rnd.state == "done" and rnd.metrics["changes"] == metrics["changes"]
    keys = [c["key"] for c in metrics["changes"]]
    kinds = sorted(set(Query.objects.filter(project=project, split="eval").values_list("kind", flat=True)))
    assert keys == [
        "pass_rate",
        "pass_rate_bfcl",
        "group:call_kinds",
        "group:three_kinds",
        *[f"kind:{k}" for k in kinds],
        "over_refusal",
    ]
    for change in metrics["changes"]:
        assert change["before"] == change["after"] and change["diff"] == change["low"] == change["high"] == 0.0
        assert change["confidence"] == 0.95 and change["n"] > 0
    runs = EvalRun.objects.filter(project=project)
    assert runs.count() == 2 and metrics["eval_run"] != metrics["before_run"]


def test_baseline_is_reused_only_when_its_answers_are_stored(eval_project):
    project, before, after = eval_project
    stored = checkpoint_eval_run(checkpoint=before)
    legacy = EvalRun.objects.create(
        project=project,
        checkpoint=before,
        status="done",
        split="eval",
        n_queries=stored.n_queries,
        metrics=stored.metrics,
    )  # a run from before EvalResult
    rnd = _evaluating_round(project, before, after)
    metrics = round_evaluate(round_id=rnd.pk)
    assert metrics["before_run"] == stored.pk != legacy.pk
    assert EvalRun.objects.filter(checkpoint=before).count() == 2  # no third run: the stored one was reused


def test_baseline_on_other_queries_is_not_reused(eval_project):
    from tests.factories import QueryFactory

    project, before, after = eval_project
    stored = checkpoint_eval_run(checkpoint=before)
    # the newest run of the same size, but one of its queries is not in today's eval set
    other = EvalRun.objects.create(
        project=project,
        checkpoint=before,
        status="done",
        split="eval",
        n_queries=stored.n_queries,
        metrics=stored.metrics,
    )
    rows = list(EvalResult.objects.filter(eval_run=stored).order_by("id"))
    stranger = QueryFactory(project=project, split="train")
    EvalResult.objects.bulk_create(
        [
            EvalResult(
                eval_run=other,
                query=stranger if i == 0 else r.query,
                kind=r.kind,
                valid=r.valid,
                valid_bfcl=r.valid_bfcl,
                deficiency=r.deficiency,
                reward=r.reward,
                expects_call=r.expects_call,
            )
            for i, r in enumerate(rows)
        ]
    )
    metrics = round_evaluate(round_id=_evaluating_round(project, before, after).pk)
    assert metrics["before_run"] == stored.pk


@pytest.fixture
def scripted_policies(eval_project, monkeypatch, tiny_model_dir):
    """`before` refuses every query; `after` gives the reference answer to every call query and, on the
    irrelevance queries, a broken call attempt (right by BFCL's rule, malformed by the strict one)."""
    from transformers import AutoTokenizer

    project, before, after = eval_project
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    queries = list(Query.objects.filter(project=project, split="eval").prefetch_related("query_tools__tool"))
    by_prompt = {query_prompt(tokenizer, q): q for q in queries}

    def after_answer(prompt):
        query = by_prompt[prompt]
        return query.reference_output if query.ground_truth else "[get_order_status(user_id=2084061', order_id='"

    answers = {before.pk: lambda p: REFUSAL, after.pk: after_answer}
    monkeypatch.setattr(evaluate_stage, "policy_backend", lambda checkpoint: AnsweringBackend(answers[checkpoint.pk]))
    return project, before, after, queries


def test_round_changes_and_intervals_on_a_scripted_policy(scripted_policies):
    project, before, after, queries = scripted_policies
    rnd = _evaluating_round(project, before, after)
    metrics = round_evaluate(round_id=rnd.pk)
    changes = {c["key"]: c for c in metrics["changes"]}
    n, calls = len(queries), sum(bool(q.ground_truth) for q in queries)
    irrelevance = n - calls  # no call is right: the irrelevance and missing-information queries
    # every call query: refused before, right after — a sure change, so the interval has no spread
    call_kinds = changes["group:call_kinds"]
    assert (call_kinds["n"], call_kinds["before"], call_kinds["after"]) == (calls, 0.0, 1.0)
    assert call_kinds["diff"] == call_kinds["low"] == call_kinds["high"] == 1.0
    assert changes["over_refusal"]["before"] == 1.0 and changes["over_refusal"]["after"] == 0.0
    assert changes["over_refusal"]["n"] == calls and changes["over_refusal"]["high"] == -1.0
    # irrelevance: right before (a text refusal); after, a broken call — malformed by the strict rule only
    assert (changes["kind:irrelevance"]["before"], changes["kind:irrelevance"]["after"]) == (1.0, 0.0)
    assert changes["pass_rate"]["diff"] == pytest.approx((calls - irrelevance) / n)
    assert changes["pass_rate_bfcl"]["after"] == 1.0
    assert changes["pass_rate"]["low"] <= changes["pass_rate"]["diff"] <= changes["pass_rate"]["high"]
    assert metrics["eval"]["deficiencies"] == {"malformed": irrelevance}
    assert metrics["before"]["deficiencies"] == {"no_call": calls}
    # the failures browser's read: the round's after-run by kind and deficiency
    after_run = EvalRun.objects.get(pk=metrics["eval_run"])
    malformed = eval_result_list(eval_run=after_run, deficiency="malformed")
    assert malformed.count() == irrelevance and {r.kind for r in malformed} == {"irrelevance", "missing_info"}
    assert eval_result_list(eval_run=after_run, kind="irrelevance", deficiency="no_call").count() == 0
    assert eval_result_list(eval_run=after_run, deficiency="none").count() == calls


def test_run_round_prints_each_change_with_its_interval(scripted_policies, capsys):
    project, before, after, queries = scripted_policies
    _evaluating_round(project, before, after)
    call_command("run_round", project=project.name, until="evaluate")
    out = capsys.readouterr().out
    calls = sum(bool(q.ground_truth) for q in queries)
    assert f"call kinds pass@1 0.0% → 100.0% (+100.0 points, 95% CI +100.0 … +100.0; n={calls})" in out
    assert "over-refusal 100.0% → 0.0% (-100.0 points" in out
    assert "single pass@1 0.0% → 100.0%" in out and "BFCL-rule pass@1" in out
    assert "deficiencies before → after: " in out and f"no_call {calls} → 0" in out
    assert "round 1 is done" in out


def test_results_have_indexes_for_the_failures_browser(db):
    with connection.cursor() as cur:
        constraints = connection.introspection.get_constraints(cur, EvalResult._meta.db_table)
    leading = [c["columns"] for c in constraints.values() if c["index"] or c["unique"]]
    for columns in (
        ["eval_run_id", "kind", "deficiency", "id"],
        ["eval_run_id", "deficiency", "id"],
        ["eval_run_id", "query_id"],
    ):
        assert columns in leading, columns


def test_deleting_a_run_deletes_its_results(eval_project):
    _, policy, _ = eval_project
    run = checkpoint_eval_run(checkpoint=policy, limit=3)
    assert EvalResult.objects.filter(eval_run=run).count() == 3
    run.delete()
    assert not EvalResult.objects.exists()
