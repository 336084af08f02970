"""A round's stages, written once: their order, the round state each runs in, the function that runs it, the Celery
task (queue, time limit) that starts it on a worker, and the rule for the next stage.

    select → search → pair → review → train → evaluate        DPO, IPO, SimPO, ORPO
    select → train → evaluate                                  GRPO: online on the selected queries, no pairs
    train → evaluate                                           round 0, the warm-up SFT on the reference answers

Celery (`lifecycle.stage_finished` sends the next stage's task), `run_round` (runs them in its own process), the
warm-up command (`round_warmup`) and the round page all read this table. Review is a stage with no function: the
round waits in it for people (or `auto_approve`) until a launch trains it. A new stage or arm is a row here and a
module in `apps/training/stages/`.

Django-free at import (the Celery app reads the queues from it while settings load); states are TrainingRound.State
values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

HOUR = 3600


@dataclass(frozen=True)
class Stage:
    name: str
    state: str  # the round's state while the stage runs (or waits, for review)
    run: str | None  # "module:function" running the whole stage in one process: f(*, round_id, progress, check)
    task: str | None  # the Celery task that starts it on a worker
    queue: str  # ... and its queue: `gpu` for the stages that load the policy
    time_limit: int  # the task's hard time limit, in seconds (a soft limit one minute earlier)
    unit: str  # what the stage's progress counts (the CLI's progress bar)
    done_key: str  # the progress keys of its count so far ...
    total_key: str  # ... and of the whole

    def runner(self) -> Callable[..., dict]:
        module, _, function = self.run.partition(":")
        return getattr(import_module(module), function)


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "select", "selecting", "apps.training.stages.select:round_select", "training.round_select", "gpu",
            12 * HOUR, "query", "done", "total",
        ),
        Stage(
            "search", "searching", "apps.training.stages.search:round_search", "training.round_search_dispatch",
            "cpu", HOUR, "tree", "trees_done", "trees",
        ),
        Stage(
            "pair", "pairing", "apps.training.stages.pair:round_pair", "curation.round_pair", "cpu",
            6 * HOUR, "tree", "done", "total",
        ),
        Stage("review", "reviewing", None, None, "", 0, "pair", "reviewed", "total"),
        Stage(
            "train", "training", "apps.training.stages.train:round_train", "training.round_train", "gpu",
            48 * HOUR, "step", "step", "max_steps",
        ),
        Stage(
            "evaluate", "evaluating", "apps.training.stages.evaluate:round_evaluate", "evaluation.round_evaluate",
            "gpu", 12 * HOUR, "query", "done", "total",
        ),
    )
}  # fmt: skip
ORDER = tuple(STAGES)
# The search stage's Celery task creates the trees (no model) and sends them in shards to `gpu` workers:
SEARCH_SHARD = Stage("search", "searching", None, "search.trees_search", "gpu", 24 * HOUR, "tree", "", "")


def path(algorithm: str) -> tuple[str, ...]:
    """The stages a round of `algorithm` goes through, in order."""
    if algorithm == "sft":
        return ("train", "evaluate")
    if algorithm == "grpo":
        return ("select", "train", "evaluate")
    return ORDER


def first_stage(algorithm: str) -> str:
    return path(algorithm)[0]


def next_stage(algorithm: str, stage: str) -> str | None:
    """The stage after `stage` for a round of `algorithm`; None after the last."""
    stages = path(algorithm)
    at = stages.index(stage)
    return stages[at + 1] if at + 1 < len(stages) else None


def reviews(algorithm: str) -> bool:
    """Whether a round of `algorithm` has pairs for people to review (GRPO and the warm-up have none)."""
    return "review" in path(algorithm)


def stage_now(algorithm: str, state: str) -> str | None:
    """The stage a round in `state` is at: its first stage while a draft, none once finished."""
    if state == "draft":
        return first_stage(algorithm)
    return next((stage.name for stage in STAGES.values() if stage.state == state), None)


def stage_path(algorithm: str, state: str, stopped_at: str | None = None) -> list[dict]:
    """The round's path for its page: each stage "done", "current", "to do", or — for a failed or cancelled round,
    at `stopped_at` (the stage it stopped in) — "failed" / "cancelled"."""
    stopped = state in ("failed", "cancelled")
    now = stopped_at if stopped else stage_now(algorithm, state)
    stages = path(algorithm)
    at = stages.index(now) if now in stages else (len(stages) if state == "done" else -1)
    marks = []
    for index, name in enumerate(stages):
        if index < at:
            mark = "done"
        elif index == at:
            mark = state if stopped else "current"
        else:
            mark = "to do"
        marks.append({"name": name, "mark": mark})
    return marks


def task_routes() -> dict[str, dict]:
    """Each stage task's queue, for the Celery app."""
    stages = [*STAGES.values(), SEARCH_SHARD]
    return {stage.task: {"queue": stage.queue} for stage in stages if stage.task}


def task_limits(task: str) -> dict:
    """A stage task's `time_limit` and `soft_time_limit`, as `shared_task` takes them."""
    stage = next(stage for stage in (*STAGES.values(), SEARCH_SHARD) if stage.task == task)
    return {"time_limit": stage.time_limit, "soft_time_limit": stage.time_limit - 60}


# --- moving a round along it (these need Django)


def enter(*, round_id: int, stage: str) -> None:
    """Put the round in `stage`'s state, unless it is there already (an invalid move raises InvalidTransition)."""
    from .models import TrainingRound
    from .services import round_transition

    if TrainingRound.objects.filter(pk=round_id).values_list("state", flat=True).get() != STAGES[stage].state:
        round_transition(round_id=round_id, to=STAGES[stage].state)


def run_stage(*, round_id: int, stage: str, progress=None, check=None) -> dict:
    """Run one stage of the round to its end in this process (the CLI's way; a worker runs a stage's task)."""
    return STAGES[stage].runner()(round_id=round_id, progress=progress, check=check)


def round_warmup(*, round_id: int, config=None, progress=None) -> dict:
    """Round 0 in one call (the warm-up command and the demo): the warm-up SFT, then its evaluation — of the
    output only: the from-scratch input policy answers nothing, and scoring it would cost minutes. A failure marks
    the round failed at that stage."""
    from dataclasses import asdict

    from .lifecycle import round_fail
    from .models import TrainingRound

    rnd = TrainingRound.objects.get(pk=round_id)
    extra = {"eval_baseline": False} | ({"warmup": asdict(config)} if config is not None else {})
    rnd.hyperparameters = {**rnd.hyperparameters, **extra}
    rnd.save(update_fields=["hyperparameters", "updated_at"])
    out: dict = {}
    for stage in path(rnd.algorithm):
        try:
            enter(round_id=round_id, stage=stage)
            result = run_stage(round_id=round_id, stage=stage, progress=progress)
        except Exception as exc:
            round_fail(round_id=round_id, stage=stage, error=f"{stage} failed: {type(exc).__name__}: {exc}")
            raise
        out.update(result if stage == "train" else {"eval": result["eval"]})
    return out
