"""The train stage as a launched job (apps/training/stages/train.py → workers/train/launch.py): a preference round and
a GRPO round on two processes, each row seen once per epoch across the ranks; a cancelled round's job stopped; a
failing job's exit code and stderr on the round; input that cannot start a job refused with the reason, resumable,
with nothing registered."""

import re

import psutil
import pytest
from django.core.management import call_command

from apps.training.lifecycle import RoundCancelled, round_launch, round_resume
from apps.training.models import Checkpoint, TrainingRound
from apps.training.pipeline import enter, next_stage
from apps.training.services import round_create
from apps.training.stages.evaluate import round_evaluate
from apps.training.stages.select import round_select
from apps.training.stages.train import round_train
from tests.workers.test_round_lifecycle import make_project, reviewed_round
from workers.train.launch import LaunchError

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
S = TrainingRound.State
QUICK = {"batch_size": 4, "learning_rate": 1e-3, "warmup_ratio": 0.0, "logging_steps": 1}


def job_children() -> list:
    """Live processes started by this test process (a job's launcher and ranks, while it runs)."""
    alive = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and "workers.train.job" in " ".join(proc.cmdline()):
                alive.append(proc)
        except psutil.Error:
            pass
    return alive


def test_a_preference_round_trains_on_two_processes_and_evaluates(settings, tiny_model_dir):
    settings.TRAIN_NUM_PROCESSES = 2
    project, policy = make_project("two-processes", tiny_model_dir)
    rnd = reviewed_round(project, policy, QUICK)
    rnd = round_launch(round_id=rnd.pk, dispatch=False)  # freezes the snapshot: 8 approved pairs
    seen = []
    out = round_train(round_id=rnd.pk, progress=seen.append)

    rnd.refresh_from_db()
    trained = rnd.policy_out.config
    assert trained["world_size"] == out["world_size"] == 2 and trained["launcher"] == "accelerate"
    # 8 pairs, 4 a step over 2 processes: 2 steps, every pair batched exactly once in the epoch
    assert trained["steps"] == 2 and trained["examples_seen"] == trained["distinct_examples_seen"] == 8
    assert [p["step"] for p in seen] == [1, 2] and all(p["tokens_per_second"] > 0 for p in seen)
    assert [p[0] for p in rnd.progress["losses"]] == [1, 2]  # rank 0's lines became the round's loss curve
    assert rnd.progress["tokens_per_second"] > 0 and rnd.progress.get("job_pid") is None
    assert not job_children()
    metrics = round_evaluate(round_id=rnd.pk)  # the checkpoint loads and answers
    assert metrics["eval"]["n"] == 6 and TrainingRound.objects.get(pk=rnd.pk).state == S.DONE


def test_a_grpo_round_trains_on_two_processes(settings, tiny_model_dir):
    settings.TRAIN_NUM_PROCESSES = 2
    project, policy = make_project("grpo-two-processes", tiny_model_dir)
    rnd = round_create(
        project=project,
        policy=policy,
        algorithm="grpo",
        selection={"method": "perplexity", "ratio": 0.2, "max_queries": 4},
        hyperparameters={
            "train": {"num_generations": 2, "batch_size": 2, "max_completion_length": 8, "logging_steps": 1},
        },
    )
    assert round_select(round_id=rnd.pk)["selected"] == 4
    enter(round_id=rnd.pk, stage=next_stage("grpo", "select"))  # GRPO goes from select straight to train
    out = round_train(round_id=rnd.pk)

    trained = TrainingRound.objects.get(pk=rnd.pk).policy_out.config
    assert trained["world_size"] == out["world_size"] == 2 and trained["algorithm"] == "grpo"
    # 4 prompts, 2 a step: 2 steps; each prompt sampled twice over the two processes, none lost or doubled
    assert trained["steps"] == 2 and trained["prompts_seen"] == 4 and trained["completions"] == 4 * 2
    assert not trained["resumed"]


def test_a_cancelled_round_stops_its_job_and_registers_nothing(tiny_model_dir):
    project, policy = make_project("cancel-train", tiny_model_dir)
    rnd = reviewed_round(project, policy, {**QUICK, "max_steps": 500, "batch_size": 2})
    round_launch(round_id=rnd.pk, dispatch=False)
    steps = []

    def check():  # as CancelCheck does once the round is cancelled: raise at the next report
        if steps:
            raise RoundCancelled("round is now cancelled")

    with pytest.raises(RoundCancelled):
        round_train(round_id=rnd.pk, progress=lambda p: steps.append(p["step"]), check=check)
    assert steps and steps[-1] < 500
    assert not job_children()
    assert not Checkpoint.objects.filter(round=rnd).exists()


def test_a_failing_job_puts_its_exit_code_and_stderr_on_the_round(tiny_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")  # the job dies loading the weights
    project, policy = make_project("failing-job", tiny_model_dir)
    Checkpoint.objects.filter(pk=policy.pk).update(path=str(broken))
    rnd = reviewed_round(project, policy, QUICK)

    with pytest.raises(Exception, match="training job exited with code"):
        call_command("run_round", project=project.name, until="train")
    rnd.refresh_from_db()
    assert rnd.state == S.FAILED and rnd.progress["failed_stage"] == "train"
    assert "train failed: JobFailed: training job exited with code 1" in rnd.error
    assert "--- stderr (last lines) ---" in rnd.error and "safetensors" in rnd.error
    assert not Checkpoint.objects.filter(round=rnd).exists() and not job_children()


@pytest.mark.parametrize(
    "setting, value, reason",
    [
        ("TRAIN_ACCELERATE_CONFIG", "/nowhere/fsdp.yaml", "accelerate config file /nowhere/fsdp.yaml does not exist"),
        ("TRAIN_NUM_PROCESSES", 64, "64 processes but only"),
        ("TRAIN_NUM_PROCESSES", 0, "num_processes must be an integer >= 1"),
    ],
)
def test_input_that_cannot_start_a_job_fails_the_round_resumably(settings, tiny_model_dir, setting, value, reason):
    project, policy = make_project("bad-launch", tiny_model_dir)
    rnd = reviewed_round(project, policy, QUICK)
    setattr(settings, setting, value)
    with pytest.raises(LaunchError, match=re.escape(reason)):
        call_command("run_round", project=project.name, until="train")
    rnd.refresh_from_db()
    assert rnd.state == S.FAILED and rnd.progress["failed_stage"] == "train"
    assert f"train failed: LaunchError: {reason}" in rnd.error
    assert not Checkpoint.objects.filter(round=rnd).exists()
    round_resume(round_id=rnd.pk, dispatch=False)  # resumable: back to training, to run again once fixed
    assert TrainingRound.objects.get(pk=rnd.pk).state == S.TRAINING
