"""Celery entry points. Each takes ids, loads rows through a service, and is safe to run twice."""

from celery import shared_task

from apps.training.pipeline import task_limits

HOUR = 3600


@shared_task(name="catalog.import_job_run", acks_late=True, time_limit=6 * HOUR, soft_time_limit=6 * HOUR - 60)
def catalog_import_job_run(job_id: int) -> dict:
    """Run an upload's import; the job row carries progress, counts and any error."""
    from apps.catalog.services import import_job_run

    job = import_job_run(job_id=job_id)
    return {"job": job.pk, "status": job.status, "counts": job.counts, "error": job.error}


def _run_stage(task, round_id: int, stage: str, run=None) -> dict:
    """Run one stage of a round (as apps.training.pipeline describes it): progress goes to the task state and the
    round; a cancelled round stops at the next report; a failure marks the round failed with the reason (resumable
    at this stage); success hands over to the next stage. `run(progress, check)` replaces the stage's own function
    (the search's shards)."""
    from apps.training.lifecycle import CancelCheck, RoundCancelled, round_fail, stage_finished
    from apps.training.models import TrainingRound
    from apps.training.pipeline import STAGES, run_stage
    from apps.training.services import round_progress

    state = STAGES[stage].state
    if not TrainingRound.objects.filter(pk=round_id, state=state).exists():
        # Cancelled, failed or already past this stage (a redelivered duplicate): nothing to do.
        return {"skipped": True, "round": round_id, "stage": stage}
    check = CancelCheck(round_id, state)

    def progress(p: dict) -> None:
        task.update_state(state="PROGRESS", meta=p)
        check()

    if run is None:

        def run(progress, check):
            return run_stage(round_id=round_id, stage=stage, progress=progress, check=check)

    round_progress(round_id=round_id, running_stage=stage)  # a worker holds the stage: rounds_reap watches it
    try:
        result = run(progress, check)
    except RoundCancelled:
        return {"cancelled": True, "round": round_id, "stage": stage}
    except Exception as exc:
        round_fail(round_id=round_id, stage=stage, error=f"{stage} failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        round_progress(round_id=round_id, running_stage=None)
    stage_finished(round_id=round_id, stage=stage)
    return result


@shared_task(bind=True, name="training.round_select", acks_late=True, **task_limits("training.round_select"))
def training_round_select(self, round_id: int) -> dict:
    """Score the round's train queries under its policy and select the weak ones."""
    return _run_stage(self, round_id, "select")


@shared_task(name="training.round_search_dispatch", acks_late=True, **task_limits("training.round_search_dispatch"))
def training_round_search_dispatch(round_id: int) -> list[str]:
    """Create the round's trees and send them to `gpu` workers in shards."""
    from apps.training.lifecycle import round_fail, stage_finished
    from apps.training.stages.search import round_search_dispatch

    try:
        task_ids = round_search_dispatch(round_id=round_id)
    except Exception as exc:
        round_fail(round_id=round_id, stage="search", error=f"search failed: {type(exc).__name__}: {exc}")
        raise
    if not task_ids:  # every tree was already searched (a resumed round): straight to pairing
        stage_finished(round_id=round_id, stage="search")
    return task_ids


@shared_task(bind=True, name="search.trees_search", acks_late=True, **task_limits("search.trees_search"))
def search_trees_search(self, round_id: int, tree_ids: list[int]) -> dict:
    """Search one shard of a round's trees; each step is stored as it is made, so a redelivered task
    (its worker died) resumes where the last stored step ended. The last shard to end sends the pair stage."""
    from apps.training.stages.search import trees_search

    return _run_stage(
        self,
        round_id,
        "search",
        lambda progress, check: trees_search(round_id=round_id, tree_ids=tree_ids, progress=progress),
    )


@shared_task(bind=True, name="curation.round_pair", acks_late=True, **task_limits("curation.round_pair"))
def curation_round_pair(self, round_id: int) -> dict:
    """Extract step-level pairs from the round's finished trees; the round then waits for review."""
    return _run_stage(self, round_id, "pair")


@shared_task(bind=True, name="training.round_train", acks_late=True, **task_limits("training.round_train"))
def training_round_train(self, round_id: int) -> dict:
    """Train the round (warm-up SFT, preference optimisation on its snapshot, or GRPO) as a launched job. A
    redelivered task resumes from the last trainer checkpoint."""
    return _run_stage(self, round_id, "train")


@shared_task(bind=True, name="evaluation.round_evaluate", acks_late=True, **task_limits("evaluation.round_evaluate"))
def evaluation_round_evaluate(self, round_id: int) -> dict:
    """Score the round's new checkpoint on the eval split (and its input policy, for before/after)."""
    return _run_stage(self, round_id, "evaluate")


def stage_task(stage: str):
    """The Celery task that starts `stage` (apps.training.pipeline names it)."""
    from apps.training.pipeline import STAGES

    name = STAGES[stage].task
    return next(task for task in STAGE_TASKS if task.name == name)


@shared_task(name="datasets.snapshot_parquet", acks_late=True, time_limit=6 * HOUR, soft_time_limit=6 * HOUR - 60)
def datasets_snapshot_parquet(file_id: int) -> dict:
    """Write a snapshot to a Parquet file; the SnapshotFile row carries progress, then the size and sha256, or
    the reason it failed."""
    from apps.datasets.services import snapshot_file_build

    file = snapshot_file_build(file_id=file_id)
    return {"file": file.pk, "status": file.status, "rows": file.rows, "sha256": file.sha256, "error": file.error}


@shared_task(bind=True, name="training.arm_run", acks_late=True, time_limit=48 * HOUR, soft_time_limit=48 * HOUR - 60)
def training_arm_run(self, arm_run_id: int) -> dict:
    """Train one arm of a round's comparison at the round's budget and evaluate it (apps.arms); a finished arm is
    skipped, a failure marks its row failed with the reason."""
    from apps.arms.models import ArmRun
    from apps.arms.services import arm_fail, arm_run

    if not ArmRun.objects.filter(pk=arm_run_id).exclude(status=ArmRun.Status.DONE).exists():
        return {"skipped": True, "arm_run": arm_run_id}
    try:
        row = arm_run(arm_run_id=arm_run_id, progress=lambda p: self.update_state(state="PROGRESS", meta=p))
    except Exception as exc:
        arm_fail(arm_run_id=arm_run_id, error=f"{type(exc).__name__}: {exc}")
        raise
    return {
        "arm_run": row.pk,
        "arm": row.arm,
        "seed": row.seed,
        "status": row.status,
        "checkpoint": row.checkpoint_id,
        "eval_run": row.eval_run_id,
    }


STAGE_TASKS = (
    training_round_select,
    training_round_search_dispatch,
    curation_round_pair,
    training_round_train,
    evaluation_round_evaluate,
)
