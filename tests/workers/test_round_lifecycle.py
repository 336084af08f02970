"""Rounds driven by real Celery workers: launch → train → evaluate → done through the stage hand-overs, a
GRPO round from draft (select → train → evaluate, no search or review), and a training worker killed with
SIGKILL that is reaped (failed, with the reason) and resumed from its last trainer checkpoint."""

import time
from datetime import timedelta
from pathlib import Path

import pytest

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.models import Query
from apps.catalog.services import records_write
from apps.curation.models import PreferencePair
from apps.training.lifecycle import round_launch, round_resume, rounds_reap
from apps.training.models import Checkpoint, EvalRun, TrainingRound
from apps.training.services import round_create, round_transition
from tests.factories import ProjectFactory
from workers.train.common import last_checkpoint

S = TrainingRound.State


def wait_for(rnd, states, timeout=300, condition=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rnd.refresh_from_db()
        if rnd.state in states and (condition is None or condition(rnd)):
            return rnd
        if rnd.state in (S.FAILED, S.CANCELLED) and rnd.state not in states:
            pytest.fail(f"round {rnd.state}: {rnd.error}")
        time.sleep(0.1)
    pytest.fail(f"round still {rnd.state} after {timeout} s (progress {rnd.progress})")


def make_project(name, tiny_model_dir):
    project = ProjectFactory(name=name)
    env = generate_environment(EnvironmentConfig(seed=3, queries=40))
    records_write(project=project, records=env.queries[:30], source="generated", split="train")
    records_write(project=project, records=env.queries[30:], source="generated", split="eval")
    policy = Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    return project, policy


def reviewed_round(project, policy, train: dict):
    """A round in review whose pairs were approved (chosen = the reference answer, rejected = a wrong one)."""
    rnd = round_create(
        project=project, policy=policy, algorithm="simpo", hyperparameters={"train": train, "eval_limit": 6}
    )
    for to in (S.SELECTING, S.SEARCHING, S.PAIRING, S.REVIEWING):
        round_transition(round_id=rnd.pk, to=to)
    queries = Query.objects.filter(project=project, split="train").exclude(reference_output="")[:8]
    for i, q in enumerate(queries):
        PreferencePair.objects.create(
            project=project,
            round=rnd,
            query=q,
            prefix="",
            chosen=q.reference_output,
            rejected=q.reference_output[: len(q.reference_output) // 2],
            gap=0.5,
            status="approved",
            dedup_key=f"k{i}",
        )
    return TrainingRound.objects.get(pk=rnd.pk)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_launched_round_trains_evaluates_and_finishes_on_workers(workers, tiny_model_dir):
    project, policy = make_project("lifecycle", tiny_model_dir)
    rnd = reviewed_round(project, policy, {"max_steps": 3, "logging_steps": 1, "batch_size": 4})
    workers.start("gpu,cpu", name="worker")
    rnd = round_launch(round_id=rnd.pk)
    rnd = wait_for(rnd, (S.DONE,))
    out = rnd.policy_out
    assert out.parent == policy and out.round == rnd and out.kind == "preference"
    assert out.config["steps"] == 3 and rnd.snapshot.pair_count == 8
    assert [p[0] for p in rnd.progress["losses"]] == [1, 2, 3]
    runs = EvalRun.objects.filter(project=project, status="done")
    assert {r.checkpoint_id for r in runs} == {policy.pk, out.pk}  # before and after, on the same queries
    assert rnd.metrics["eval"]["n"] == rnd.metrics["before"]["n"] == 6
    assert rnd.metrics["pass_rate_change"] == pytest.approx(
        rnd.metrics["eval"]["pass_rate"] - rnd.metrics["before"]["pass_rate"]
    )
    for figures in (rnd.metrics["eval"], rnd.metrics["before"]):  # the generated tools run: Solve-F1 everywhere
        assert figures["solve_n"] == 6 and 0 <= figures["solve_f1"] <= 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_grpo_round_goes_from_draft_to_done_without_search(workers, tiny_model_dir):
    project, policy = make_project("grpo-round", tiny_model_dir)
    rnd = round_create(
        project=project,
        policy=policy,
        algorithm="grpo",
        selection={"method": "perplexity", "ratio": 0.3, "max_queries": 4},
        hyperparameters={
            "train": {
                "max_steps": 2,
                "num_generations": 2,
                "batch_size": 2,
                "max_completion_length": 16,
                "logging_steps": 1,
                "reward": "solve_f1",
            },
            "eval_limit": 4,
        },
    )
    workers.start("gpu,cpu", name="worker")
    rnd = round_launch(round_id=rnd.pk)
    rnd = wait_for(rnd, (S.DONE,))
    assert rnd.policy_out.kind == "grpo" and not rnd.trees.exists() and not rnd.pairs.exists()
    assert rnd.round_queries.filter(selected=True).count() == 4


def job_processes(spec_path: Path) -> list:
    """The live processes of the training job started from `spec_path` (launcher and ranks)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if str(spec_path) in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("processes", [1, 2])
def test_killed_training_worker_is_reaped_and_resumes_from_its_checkpoint(workers, tiny_model_dir, processes):
    from django.conf import settings

    project, policy = make_project(f"kill-train-{processes}", tiny_model_dir)
    rnd = reviewed_round(project, policy, {"max_steps": 120, "save_steps": 5, "logging_steps": 1, "batch_size": 2})
    on = {"TRAIN_NUM_PROCESSES": str(processes)}
    first = workers.start("gpu", name="first", env=on)
    rnd = round_launch(round_id=rnd.pk)
    scratch = settings.CHECKPOINT_DIR / project.name / f"round-{rnd.number}-trainer-state-{rnd.pk}"
    spec = settings.CHECKPOINT_DIR / project.name / f"round-{rnd.number}-job-{rnd.pk}" / "spec.json"

    def saved_a_checkpoint(r):
        return r.progress.get("step", 0) >= 12 and any(scratch.glob("checkpoint-*"))

    wait_for(rnd, (S.TRAINING,), timeout=400, condition=saved_a_checkpoint)
    assert len(job_processes(spec)) >= 1 + processes  # the launcher and its ranks
    workers.kill(first)
    killed_at = TrainingRound.objects.get(pk=rnd.pk).progress["step"]
    assert killed_at < 120, "training ended before the kill: raise max_steps"
    # the job runs in a session of its own, out of reach of the kill: it ends because its worker died
    deadline = time.monotonic() + 60
    while job_processes(spec) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not job_processes(spec), "the training job outlived its worker"

    assert rounds_reap(stalled_after=timedelta(seconds=0)) == [rnd.pk]
    rnd.refresh_from_db()
    assert rnd.state == S.FAILED and "train worker sent no progress" in rnd.error
    # the kill may land mid-save: the newest *complete* checkpoint is the one a resume must start from
    saved = int(Path(last_checkpoint(scratch)).name.split("-")[1])

    workers.start("gpu,cpu", name="second", env=on)
    round_resume(round_id=rnd.pk)
    rnd = wait_for(rnd, (S.DONE,), timeout=500)
    trained = rnd.policy_out.config
    assert trained["resumed"] and trained["resumed_from_step"] == saved and trained["steps"] == 120
    assert trained["world_size"] == processes and trained["launcher"] == "accelerate"
    steps = [p[0] for p in rnd.progress["losses"]]
    # the second worker's loss points start after the saved step: it continued, it did not start over
    resumed_points = steps[steps.index(killed_at) + 1 :] if killed_at in steps else steps
    assert resumed_points[0] == saved + 1 and resumed_points[-1] == 120
