"""Launching and running arms: bad input refused with nothing written, the budget every arm trains at, the rows a
run leaves (checkpoint + EvalRun), the arms table, re-runs skipping finished arms, and the Celery task."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.arms.models import ArmRun
from apps.arms.selectors import arms_table, column_rate
from apps.arms.services import ArmsRefused, arms_launch
from apps.curation.models import PreferencePair
from apps.search.models import TreeNode
from apps.training.models import Checkpoint, EvalRun, TrainingRound
from workers.evaluation import KIND_GROUPS


def _nothing_written(rnd, checkpoints: int) -> bool:
    return not ArmRun.objects.filter(round=rnd).exists() and Checkpoint.objects.count() == checkpoints


@pytest.mark.parametrize(
    "arms, seeds, message",
    [
        (
            "step_pairs,dpo_magic",
            1,
            "unknown arm(s): dpo_magic; known: step_pairs, unreviewed, whole_pairs, rft, sft, grpo",
        ),
        ("sft", 0, "seeds must be a whole number from 1 to 10, got 0"),
        ("sft", 11, "from 1 to 10, got 11"),
    ],
)
def test_bad_arms_or_seeds_are_refused(arms_round, arms, seeds, message):
    before = Checkpoint.objects.count()
    with pytest.raises(ArmsRefused) as refused:
        arms_launch(round=arms_round, arms=arms, seeds=seeds, dispatch=False)
    assert message in str(refused.value)
    assert _nothing_written(arms_round, before)


def test_an_arm_without_data_refuses_the_whole_launch(arms_round):
    before = Checkpoint.objects.count()
    TreeNode.objects.filter(tree__round=arms_round, verdict__valid=True).update(verdict={"valid": False})
    with pytest.raises(ArmsRefused, match="arm 'rft' has no data: round 1 has no correct complete rollout"):
        arms_launch(round=arms_round, arms="sft,rft", dispatch=False)  # sft has data: nothing is written anyway
    assert _nothing_written(arms_round, before)
    with pytest.raises(CommandError, match="arm 'rft' has no data"):
        call_command("compare_arms", project=arms_round.project.name, round=1, arms="rft")
    assert _nothing_written(arms_round, before)


def test_a_round_without_pairs_or_budget_is_refused(arms_round):
    before = Checkpoint.objects.count()
    PreferencePair.objects.filter(round=arms_round).delete()
    with pytest.raises(ArmsRefused, match="arm 'unreviewed' has no data: round 1 has no pairs"):
        arms_launch(round=arms_round, arms="unreviewed", dispatch=False)
    TrainingRound.objects.filter(pk=arms_round.pk).update(snapshot=None)
    with pytest.raises(ArmsRefused, match="training budget .* is not known yet"):
        arms_launch(round=arms_round, arms="sft", dispatch=False)
    assert _nothing_written(arms_round, before)


def test_a_round_whose_input_checkpoint_is_gone_is_refused(arms_round, tmp_path):
    before = Checkpoint.objects.count()
    policy = arms_round.policy_in
    Checkpoint.objects.filter(pk=policy.pk).update(path=str(tmp_path / "deleted"))
    with pytest.raises(
        ArmsRefused,
        match=rf"input checkpoint #{policy.pk} \(nano\) is gone: its folder .*deleted "
        "does not exist",
    ):
        arms_launch(round=arms_round, arms="sft", dispatch=False)
    TrainingRound.objects.filter(pk=arms_round.pk).update(policy_in=None)  # as when the row is deleted (SET_NULL)
    with pytest.raises(ArmsRefused, match="round 1 has no input checkpoint"):
        arms_launch(round=arms_round, arms="sft", dispatch=False)
    assert _nothing_written(arms_round, before)


def test_launch_sends_one_task_per_unfinished_arm_at_commit(
    arms_round, monkeypatch, django_capture_on_commit_callbacks
):
    from workers import tasks

    sent = []
    monkeypatch.setattr(tasks.training_arm_run, "apply_async", lambda args, task_id: sent.append((args, task_id)))
    with django_capture_on_commit_callbacks(execute=True):
        rows = arms_launch(round=arms_round, arms=["sft", "grpo"], seeds=2)
    assert sorted((r.arm, r.seed) for r in rows) == [("grpo", 0), ("grpo", 1), ("input", 0), ("sft", 0), ("sft", 1)]
    assert sorted(args[0] for args, _ in sent) == sorted(r.pk for r in rows)
    assert {task_id for _, task_id in sent} == set(ArmRun.objects.values_list("task_id", flat=True))
    assert all(
        r.budget == {"steps": 2, "batch": 2, "sequences": 4, "source": r.budget["source"]}
        for r in rows
        if r.arm != "input"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert arms_launch(round=arms_round, arms=["sft", "grpo"], seeds=2) == []  # queued already: not sent twice
    assert len(sent) == 5


def test_the_task_marks_a_failing_arm_failed_with_the_reason(arms_round, tmp_path):
    from workers.tasks import training_arm_run

    [_, row] = arms_launch(round=arms_round, arms="sft", dispatch=False)
    Checkpoint.objects.filter(pk=arms_round.policy_in_id).update(path=str(tmp_path / "gone"))
    with pytest.raises(ArmsRefused):
        training_arm_run.apply(args=(row.pk,), throw=True)
    row.refresh_from_db()
    assert row.status == "failed" and "is gone: its folder" in row.error and row.checkpoint is None


def test_compare_arms_trains_each_kind_of_arm_at_the_round_budget(arms_round, capsys):
    """A preference arm, an SFT arm and GRPO, really trained (2 steps of 2 on the nano model) and evaluated."""
    policy = arms_round.policy_in
    call_command("compare_arms", project=arms_round.project.name, round=1, arms="whole_pairs,rft,grpo")
    out, err = capsys.readouterr()
    assert "round 1 budget: 2 steps × batch 2" in out
    assert "whole_pairs seed 0: train 2/2" in err and "grpo seed 0: evaluate" in err  # plain lines: not a terminal
    runs = {r.arm: r for r in ArmRun.objects.filter(round=arms_round).select_related("checkpoint", "eval_run")}
    assert set(runs) == {"input", "whole_pairs", "rft", "grpo"} and all(r.status == "done" for r in runs.values())
    assert runs["input"].checkpoint == policy and runs["input"].budget == {}
    n = runs["input"].eval_run.n_queries
    for arm, kind in (("whole_pairs", "preference"), ("rft", "sft"), ("grpo", "grpo")):
        run = runs[arm]
        assert run.checkpoint.kind == kind and run.checkpoint.parent == policy and run.checkpoint.round == arms_round
        assert Path(run.checkpoint.path, "config.json").exists()
        assert run.budget["steps"] == 2 and run.budget["batch"] == 2 and run.budget["sequences"] == 4
        assert run.checkpoint.config["budget"] == run.budget
        steps = run.metrics["train"].get("steps") or run.metrics["train"]["buckets"][0]["steps"]
        assert steps == 2  # exactly the round's optimizer steps
        assert run.eval_run.status == "done" and run.eval_run.n_queries == n and run.eval_run.round == arms_round
    assert runs["whole_pairs"].budget["examples"] == 5 and "subsample" in runs["whole_pairs"].budget["fitted"]
    assert runs["grpo"].budget["prompts_per_step"] * runs["grpo"].budget["completions_per_prompt"] == 2
    assert runs["whole_pairs"].checkpoint.config["config"]["beta"] == 2.5  # the round's SimPO, its settings
    assert runs["whole_pairs"].checkpoint.config["config"]["sft_weight"] == 1.0

    table = arms_table(round=arms_round)
    assert [row["arm"] for row in table["arms"]] == ["whole_pairs", "rft", "grpo"] and table["kinds"][0] == "all"
    cell = table["arms"][0]["cells"]["all"]
    assert cell["pass_rate"] == runs["whole_pairs"].eval_run.metrics["pass_rate"]
    interval = cell["interval"]
    assert interval["n"] == n and interval["low"] <= interval["diff"] <= interval["high"]
    assert interval["diff"] == pytest.approx(cell["pass_rate"] - table["baseline"]["cells"]["all"]["pass_rate"])
    # the call kinds pooled: the figure a round is judged by, with its own interval over those queries alone
    call = [r.valid for r in runs["whole_pairs"].eval_run.results.all() if r.kind in KIND_GROUPS["call_kinds"]]
    assert call and table["kinds"][1] == "call_kinds"
    pooled = table["arms"][0]["cells"]["call_kinds"]
    assert pooled["pass_rate"] == pytest.approx(sum(call) / len(call)) and pooled["n"] == len(call)
    assert pooled["interval"]["n"] == len(call)
    assert "over-refusal" in out and "whole_pairs" in out and "call_kinds" in out

    # again: every arm has finished, nothing is trained or evaluated
    checkpoints, evals = Checkpoint.objects.count(), EvalRun.objects.count()
    call_command("compare_arms", project=arms_round.project.name, round=1, arms="whole_pairs,rft,grpo")
    assert "nothing trained" in capsys.readouterr().out
    assert (Checkpoint.objects.count(), EvalRun.objects.count()) == (checkpoints, evals)


def test_a_group_column_pools_its_kinds_queries_not_their_rates():
    metrics = {
        "pass_rate": 0.5,
        "n": 100,
        "by_kind": {
            "single": {"pass_rate": 0.8, "n": 10},
            "parallel": {"pass_rate": 0.2, "n": 40},
            "irrelevance": {"pass_rate": 0.76, "n": 50},
        },
    }
    assert column_rate(metrics, "all") == (0.5, 100)
    assert column_rate(metrics, "call_kinds") == (pytest.approx((8 + 8) / 50), 50)  # not (0.8 + 0.2) / 2
    assert column_rate(metrics, "irrelevance") == (0.76, 50)
    assert column_rate(metrics, "multi_hop") is None
