"""Writes to arm runs: planning and launching a round's comparison (everything checked before any row is
written), and running one arm — train at the round's budget, register the checkpoint, evaluate it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.training.models import Checkpoint, EvalRun, TrainingRound
from workers.progress import Progress

from .budget import Budget, BudgetError, grpo_shape, round_budget
from .data import INPUT, TRAINED_ARMS, ArmDataError, arm_size
from .models import ArmRun

MAX_SEEDS = 10  # seeds per arm in one launch; each is a full training run


class ArmsRefused(ValueError):
    """A comparison that cannot be launched; the message names the problem. Nothing was written."""


@dataclass(frozen=True)
class ArmsPlan:
    round: TrainingRound
    arms: tuple[str, ...]
    seeds: int
    budget: Budget
    sizes: dict  # arm → examples it has


def arms_parse(value: str | list | tuple | None) -> tuple[str, ...]:
    """Arm names from "a,b" or a list; all six when empty. ArmsRefused names unknown ones."""
    if value is None or value == "" or value == []:
        return TRAINED_ARMS
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value)]
    if any(not isinstance(n, str) or not n for n in names):
        raise ArmsRefused(f"arms must be names separated by commas, got {value!r}")
    unknown = [n for n in names if n not in TRAINED_ARMS]
    if unknown:
        raise ArmsRefused(f"unknown arm(s): {', '.join(unknown)}; known: {', '.join(TRAINED_ARMS)}")
    return tuple(dict.fromkeys(names))


def arms_plan(*, round: TrainingRound, arms=None, seeds: int = 1) -> ArmsPlan:
    """Check a comparison can run — arm names, seeds, the input checkpoint (row and folder), the round's budget,
    every arm's data — and say what it will train. ArmsRefused with the first problem found."""
    names = arms_parse(arms)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ArmsRefused(f"seeds must be a whole number from 1 to {MAX_SEEDS}, got {seeds!r}")
    rnd = TrainingRound.objects.select_related("project", "policy_in", "policy_out", "snapshot").get(pk=round.pk)
    if rnd.policy_in is None:
        raise ArmsRefused(
            f"round {rnd.number} has no input checkpoint (it was deleted, or never set): the arms train from it"
        )
    if not Path(rnd.policy_in.path).is_dir():
        raise ArmsRefused(
            f"round {rnd.number}'s input checkpoint #{rnd.policy_in.pk} ({rnd.policy_in.name}) is gone: "
            f"its folder {rnd.policy_in.path} does not exist"
        )
    try:
        budget = round_budget(rnd)
        if "grpo" in names:
            grpo_shape(budget)
        sizes = {arm: arm_size(rnd, arm) for arm in names}
    except (BudgetError, ArmDataError) as exc:
        raise ArmsRefused(str(exc)) from None
    return ArmsPlan(rnd, names, seeds, budget, sizes)


def arms_launch(*, round: TrainingRound, arms=None, seeds: int = 1, user=None, dispatch: bool = True) -> list[ArmRun]:
    """Plan the comparison, then create the missing (arm, seed) rows — plus the input policy's evaluation, the
    baseline — and, with `dispatch`, send each unfinished one to a `gpu` worker once the transaction commits.
    Finished rows are kept and skipped; failed ones are run again. Returns the rows to run."""
    plan = arms_plan(round=round, arms=arms, seeds=seeds)
    wanted = [(INPUT, 0)] + [(arm, seed) for arm in plan.arms for seed in range(plan.seeds)]
    with transaction.atomic():
        existing = {(r.arm, r.seed): r for r in ArmRun.objects.select_for_update().filter(round=plan.round)}
        to_run = []
        for arm, seed in wanted:
            row = existing.get((arm, seed))
            if row is None:
                row = ArmRun.objects.create(
                    round=plan.round,
                    arm=arm,
                    seed=seed,
                    created_by=user,
                    budget=plan.budget.as_dict() if arm != INPUT else {},
                    progress={"stage": "queued"},
                )
            elif row.status == ArmRun.Status.DONE:
                continue
            elif row.status == ArmRun.Status.FAILED:
                row.status, row.error, row.progress = ArmRun.Status.PENDING, "", {"stage": "queued"}
                row.save(update_fields=["status", "error", "progress", "updated_at"])
            elif dispatch and row.task_id:  # pending or running on a worker already: not sent twice
                continue
            to_run.append(row)
        if dispatch:
            for row in to_run:
                _send(row)
    return to_run


def _send(row: ArmRun) -> None:
    import uuid

    from workers.tasks import training_arm_run

    row.task_id = str(uuid.uuid4())
    row.save(update_fields=["task_id", "updated_at"])
    task_id = row.task_id
    transaction.on_commit(lambda: training_arm_run.apply_async(args=(row.pk,), task_id=task_id))


def arm_progress(*, arm_run_id: int, **progress) -> None:
    """Merge figures (stage, step, max_steps, loss, done, total) into the row's progress; None removes a key."""
    with transaction.atomic():
        row = ArmRun.objects.select_for_update().only("progress").get(pk=arm_run_id)
        merged = {**row.progress, **progress}
        row.progress = {k: v for k, v in merged.items() if v is not None}
        row.save(update_fields=["progress", "updated_at"])


def arm_fail(*, arm_run_id: int, error: str) -> None:
    ArmRun.objects.filter(pk=arm_run_id).update(
        status=ArmRun.Status.FAILED, error=error[:10_000], finished_at=timezone.now(), updated_at=timezone.now()
    )


def _output_dir(row: ArmRun) -> Path:
    rnd = row.round
    return (
        settings.CHECKPOINT_DIR / rnd.project.name / f"round-{rnd.number}-arms" / f"{row.arm}-seed{row.seed}-{row.pk}"
    )


def arm_run(*, arm_run_id: int, progress: Progress | None = None) -> ArmRun:
    """Run one arm: train it from the round's input policy at the budget recorded at launch (the input arm trains
    nothing), register the checkpoint, evaluate it on the round's eval queries. Safe to run again: a finished
    row is returned as is, a trained one is only evaluated. Raises on failure (the caller marks the row failed)."""
    from apps.training.services import checkpoint_register
    from apps.training.stages.evaluate import checkpoint_evaluate

    from .train import arm_train

    row = ArmRun.objects.select_related("round__project", "round__policy_in", "checkpoint").get(pk=arm_run_id)
    if row.status == ArmRun.Status.DONE:
        return row
    ArmRun.objects.filter(pk=row.pk).update(status=ArmRun.Status.RUNNING, error="", started_at=timezone.now())
    rnd = row.round

    def report(p: dict) -> None:
        figures = {k: p.get(k) for k in ("stage", "step", "max_steps", "loss", "reward", "done", "total")}
        arm_progress(arm_run_id=row.pk, **figures)
        if progress:
            progress(p)

    if row.arm == INPUT:
        row.checkpoint = rnd.policy_in
    elif row.checkpoint is None:
        plan = arms_plan(round=rnd, arms=[row.arm], seeds=1)  # the data and the folder may have gone since launch
        budget = Budget(
            row.budget.get("steps") or plan.budget.steps,
            row.budget.get("batch") or plan.budget.batch,
            row.budget.get("source") or plan.budget.source,
        )
        output = _output_dir(row)
        kind, config, record, summary = arm_train(
            rnd=rnd,
            arm=row.arm,
            budget=budget,
            seed=row.seed,
            output=output,
            progress=lambda p: report({"stage": "train", **p}),
        )
        row.checkpoint = checkpoint_register(
            project=rnd.project,
            name=f"{rnd.project.name}-round{rnd.number}-arm-{row.arm}-seed{row.seed}",
            path=str(output),
            kind=kind,
            parent=rnd.policy_in,
            round=rnd,
            config={
                "arm": row.arm,
                "seed": row.seed,
                "algorithm": rnd.algorithm if kind == "preference" else kind,
                "config": config,
                "budget": record,
                **summary,
            },
        )
        row.budget, row.metrics = record, {"train": summary}
        ArmRun.objects.filter(pk=row.pk).update(checkpoint=row.checkpoint, budget=record, metrics=row.metrics)
    limit = rnd.hyperparameters.get("eval_limit")
    run = _reusable_eval(row.checkpoint, limit) if row.arm == INPUT else None
    if run is None:
        checkpoint_evaluate(
            checkpoint=row.checkpoint, round=rnd, limit=limit, progress=lambda p: report({"stage": "evaluate", **p})
        )
        run = EvalRun.objects.filter(checkpoint=row.checkpoint, status=EvalRun.Status.DONE).order_by("-pk").first()
    metrics = {**row.metrics, "eval": run.metrics}
    ArmRun.objects.filter(pk=row.pk).update(
        status=ArmRun.Status.DONE,
        checkpoint=row.checkpoint,
        eval_run=run,
        metrics=metrics,
        progress={"stage": "done"},
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    row.refresh_from_db()
    return row


def _reusable_eval(checkpoint: Checkpoint, limit: int | None) -> EvalRun | None:
    """A finished evaluation of the input policy on the same eval queries (same split, same size), to reuse."""
    from apps.catalog.models import Query

    n = Query.objects.filter(project=checkpoint.project_id, split=Query.Split.EVAL, ground_truth__isnull=False).count()
    n = min(n, limit) if limit else n
    runs = EvalRun.objects.filter(checkpoint=checkpoint, status=EvalRun.Status.DONE, split="eval", n_queries=n)
    from .outcomes import has_outcomes

    return next((run for run in runs.order_by("-pk") if has_outcomes(run)), None)
