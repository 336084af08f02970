"""Writes to training rounds: creating them and moving them through their states (only through here)."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .models import Checkpoint, TrainingRound

State = TrainingRound.State

# Where a round may go from each state. failed / cancelled / done are final.
TRANSITIONS: dict[str, set[str]] = {
    State.DRAFT: {State.SELECTING, State.TRAINING, State.CANCELLED},  # round 0 and GRPO skip the search
    State.SELECTING: {State.SEARCHING, State.TRAINING, State.FAILED, State.CANCELLED},
    State.SEARCHING: {State.PAIRING, State.FAILED, State.CANCELLED},
    State.PAIRING: {State.REVIEWING, State.FAILED, State.CANCELLED},
    State.REVIEWING: {State.TRAINING, State.FAILED, State.CANCELLED},
    State.TRAINING: {State.EVALUATING, State.FAILED, State.CANCELLED},
    State.EVALUATING: {State.DONE, State.FAILED, State.CANCELLED},
    State.DONE: set(),
    # A failed round can be resumed at the stage that failed (lifecycle.round_resume), or cancelled.
    State.FAILED: {State.SELECTING, State.SEARCHING, State.PAIRING, State.TRAINING, State.EVALUATING,
                   State.CANCELLED},
    State.CANCELLED: set(),
}


class InvalidTransition(ValueError):
    """A state change the lifecycle does not allow; the message says what is allowed."""


def round_create(*, project, algorithm: str = TrainingRound.Algorithm.SIMPO, policy: Checkpoint | None = None,
                 selection: dict | None = None, search_config: dict | None = None, hyperparameters: dict | None = None,
                 created_by=None) -> TrainingRound:
    """A new draft round numbered after the project's last; its policy defaults to the last round's output."""
    with transaction.atomic():
        last = TrainingRound.objects.select_for_update().filter(project=project).aggregate(n=Max("number"))["n"]
        if policy is None:
            previous = TrainingRound.objects.filter(project=project, policy_out__isnull=False).order_by("-number").first()
            policy = previous.policy_out if previous else None
        return TrainingRound.objects.create(
            project=project, number=0 if last is None else last + 1, algorithm=algorithm, policy_in=policy,
            selection=selection or {}, search_config=search_config or {}, hyperparameters=hyperparameters or {},
            created_by=created_by,
        )


def round_transition(*, round_id: int, to: str, error: str | None = None, **fields) -> TrainingRound:
    """Move a round to state `to` (with any other fields to set), or refuse with InvalidTransition.
    `error` replaces the round's error message when given ("" clears it)."""
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().get(pk=round_id)
        allowed = TRANSITIONS[rnd.state]
        if to not in allowed:
            options = ", ".join(sorted(allowed)) or "none (final state)"
            raise InvalidTransition(f"round {rnd.number} is {rnd.state}: it cannot become {to} (allowed: {options})")
        rnd.state = to
        now = timezone.now()
        if rnd.started_at is None and to not in (State.CANCELLED,):
            rnd.started_at = now
        rnd.finished_at = now if to in (State.DONE, State.FAILED, State.CANCELLED) else None
        if error is not None:
            rnd.error = error[:10_000]
        for name, value in fields.items():
            setattr(rnd, name, value)
        rnd.save()
        return rnd


MAX_LOSS_POINTS = 400


def round_progress(*, round_id: int, loss_point: tuple[int, float] | None = None, **progress) -> None:
    """Merge progress figures (stage, counts, step, loss) into the round, for pages, REST and the CLI; a
    `loss_point` (step, loss) is appended to the round's loss curve (thinned to MAX_LOSS_POINTS).
    A key given as None is removed."""
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().only("progress").get(pk=round_id)
        merged = {**rnd.progress, **progress}
        if loss_point is not None:
            curve = [*merged.get("losses", []), [int(loss_point[0]), float(loss_point[1])]]
            if len(curve) > MAX_LOSS_POINTS:  # keep the shape: drop every other point of the older half
                half = len(curve) // 2
                curve = curve[:half:2] + curve[half:]
            merged["losses"] = curve
        rnd.progress = {k: v for k, v in merged.items() if v is not None}
        rnd.save(update_fields=["progress", "updated_at"])


def checkpoint_register(*, project, name: str, path: str, kind: str, parent: Checkpoint | None = None,
                        round: TrainingRound | None = None, config: dict | None = None) -> Checkpoint:
    return Checkpoint.objects.create(project=project, name=name, path=path, kind=kind, parent=parent, round=round,
                                     config=config or {})
