"""Launching, continuing, cancelling and resuming rounds: what an admin does to a round, and what the workers
do when a stage ends. States change only through `services.round_transition`; tasks are sent after the
transaction that decided to send them commits, so a rolled-back launch sends nothing.

One button drives a round forward: **launch** starts a draft round at its first stage and, once review is done,
checks the review gate, freezes the snapshot and trains. Each stage's task hands over to the next when it ends
(`stage_finished`), in the order `apps.training.pipeline` gives for the round's algorithm.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from apps.curation.models import PreferencePair

from . import pipeline
from .models import TrainingRound
from .services import InvalidTransition, round_progress, round_transition

S = TrainingRound.State
ACTIVE = (S.SELECTING, S.SEARCHING, S.PAIRING, S.TRAINING, S.EVALUATING)
FINAL = (S.DONE, S.FAILED, S.CANCELLED)
# The state a failed stage returns to when resumed (the stages that run: review waits for people).
STAGE_STATE = {name: stage.state for name, stage in pipeline.STAGES.items() if stage.run}
STATE_STAGE = {state: stage for stage, state in STAGE_STATE.items()}


class LaunchRefused(Exception):
    """A launch (or cancel / resume) that cannot happen now; the message says why, with the counts."""

    def __init__(self, message: str, gate: GateStatus | None = None):
        super().__init__(message)
        self.gate = gate


class RoundCancelled(Exception):
    """Raised inside a running stage when its round was cancelled: the stage stops, its data stays."""


# --- the review gate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateStatus:
    ok: bool
    reason: str
    total: int
    pending: int
    flagged: int
    approved: int
    edited: int
    rejected: int

    @property
    def reviewed(self) -> int:
        return self.approved + self.edited + self.rejected

    @property
    def trainable(self) -> int:
        """Pairs that go into the snapshot: approved, and approved after an edit."""
        return self.approved + self.edited

    def as_dict(self) -> dict:
        return {**asdict(self), "reviewed": self.reviewed, "trainable": self.trainable}


def round_gate(rnd: TrainingRound) -> GateStatus:
    """Whether the round's review is far enough for training, by its gate (one GROUP BY query)."""
    counts = dict(
        PreferencePair.objects.filter(round=rnd)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    c = {status: counts.get(status, 0) for status in PreferencePair.Status.values}
    total = sum(c.values())
    reviewed = c["approved"] + c["edited"] + c["rejected"]
    trainable = c["approved"] + c["edited"]
    figures = (
        f"{total} pairs: {c['pending']} pending, {c['flagged']} flagged, {c['approved']} approved, "
        f"{c['edited']} edited, {c['rejected']} rejected"
    )
    if not pipeline.reviews(rnd.algorithm):
        ok, reason = True, "GRPO trains online on the selected queries: no pairs, no review"
    elif rnd.gate == TrainingRound.Gate.ALL_REVIEWED:
        ok = total > 0 and c["pending"] == 0 and c["flagged"] == 0
        reason = (
            f"every pair is reviewed ({figures})"
            if ok
            else f"the gate needs every pair reviewed: {c['pending'] + c['flagged']} of {total} are not ({figures})"
            if total
            else "the round has no pairs to review"
        )
    elif rnd.gate == TrainingRound.Gate.FRACTION_REVIEWED:
        fraction = reviewed / total if total else 0.0
        ok = total > 0 and fraction >= rnd.gate_value
        reason = f"{fraction:.0%} reviewed, the gate needs {rnd.gate_value:.0%} ({figures})"
    else:
        ok = trainable >= rnd.gate_value
        reason = f"{trainable} approved, the gate needs {rnd.gate_value:g} ({figures})"
    if ok and pipeline.reviews(rnd.algorithm) and trainable == 0:
        ok, reason = False, f"no approved pair to train on ({figures})"
    if not total and pipeline.reviews(rnd.algorithm):
        why = rnd.progress.get("reason")  # the pair stage's account of why the search gave none
        reason = "the round has no pairs to review" + (f": {why}" if why else "")
    return GateStatus(ok, reason, total, c["pending"], c["flagged"], c["approved"], c["edited"], c["rejected"])


# --- sending tasks ----------------------------------------------------------------------------------


def _send(rnd: TrainingRound, task, *args) -> str:
    """Send `task(*args)` once the current transaction commits; its id is kept on the round (for cancel)."""
    task_id = str(uuid.uuid4())
    TrainingRound.objects.filter(pk=rnd.pk).update(task_ids=[*rnd.task_ids, task_id][-200:])
    rnd.task_ids = [*rnd.task_ids, task_id][-200:]
    transaction.on_commit(lambda: task.apply_async(args=args, task_id=task_id))
    return task_id


def _send_stage(rnd: TrainingRound, stage: str) -> None:
    """Send the task that runs `stage` of the round (once the transaction commits)."""
    from workers.tasks import stage_task

    _send(rnd, stage_task(stage), rnd.pk)


# --- launch -------------------------------------------------------------------------------------------


def round_launch(*, round_id: int, user=None, dispatch: bool = True) -> TrainingRound:
    """Start a draft round, or train a reviewed one. Refused (LaunchRefused, nothing changed) when the round
    has no policy, is already running, or its review gate does not hold. With `dispatch=False` no task is
    sent: the caller (the CLI) runs the stage in its own process."""
    from apps.datasets.services import snapshot_freeze

    with transaction.atomic():
        rnd = (
            TrainingRound.objects.select_for_update(of=("self",))  # Postgres: not the nullable joined rows
            .select_related("project", "policy_in")
            .get(pk=round_id)
        )
        if rnd.policy_in is None:
            raise LaunchRefused(f"round {rnd.number} has no policy checkpoint: build or train one first")
        if rnd.state == S.DRAFT:
            first = pipeline.first_stage(rnd.algorithm)
            rnd = round_transition(round_id=rnd.pk, to=pipeline.STAGES[first].state)
            round_progress(round_id=rnd.pk, stage=first, launched_by=_who(user))
            if dispatch:
                _send_stage(rnd, first)
            return TrainingRound.objects.get(pk=rnd.pk)
        if rnd.state != S.REVIEWING:
            raise LaunchRefused(
                f"round {rnd.number} is {rnd.state}: only a draft round (to start it) or a round "
                "in review (to train it) can be launched"
            )
        gate = round_gate(rnd)
        if not gate.ok:
            raise LaunchRefused(f"the review gate does not hold: {gate.reason}", gate)
        snapshot = snapshot_freeze(
            project=rnd.project,
            round=rnd,
            created_by=user if _is_user(user) else None,
            name=f"{rnd.project.name} round {rnd.number}",
        )
        rnd = round_transition(round_id=rnd.pk, to=S.TRAINING, snapshot=snapshot)
        round_progress(
            round_id=rnd.pk,
            stage="train",
            gate=gate.as_dict(),
            snapshot=snapshot.pk,
            snapshot_pairs=snapshot.pair_count,
            launched_by=_who(user),
        )
        if dispatch:
            _send_stage(rnd, "train")
        return TrainingRound.objects.get(pk=rnd.pk)


def _is_user(user) -> bool:
    return getattr(user, "is_authenticated", False)


def _who(user) -> str:
    return user.get_username() if _is_user(user) else "system"


def round_auto_approve(*, round_id: int, reason: str = "round setting auto_approve") -> int:
    """Approve every pending pair of the round (no human review); returns how many. Each approval goes through
    the review service, versioned and audited as the automatic reviewer's ("(auto-approve)"), `reason` in its
    note."""
    from apps.curation.services import StaleVersion, auto_reviewer, pair_auto_approve

    reviewer = auto_reviewer()
    approved = 0
    for pair_id, version in (
        PreferencePair.objects.filter(round_id=round_id, status=PreferencePair.Status.PENDING)
        .values_list("pk", "version")
        .iterator()
    ):
        try:
            pair_auto_approve(pair_id=pair_id, version=version, note=f"automatic approval: {reason}", reviewer=reviewer)
            approved += 1
        except StaleVersion:  # someone reviewed it meanwhile: theirs stands
            pass
    return approved


# --- a stage ended: hand over to the next one ------------------------------------------------------------


def stage_finished(*, round_id: int, stage: str) -> None:
    """Called by a stage's task when it has done its work: put the round in the next stage and send its task, or
    (before review) auto-approve and launch when the round says so; after the last stage, nothing."""
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().get(pk=round_id)
        if rnd.state in FINAL:
            return
        following = pipeline.next_stage(rnd.algorithm, stage)
        if stage == "search":
            from apps.search.models import SearchTree

            # Several shards end at about the same time; the row lock and the state make exactly one of them send
            # the pair stage: the one that sees every tree done while the round is still searching.
            unfinished = SearchTree.objects.filter(round=rnd).exclude(status=SearchTree.Status.DONE).count()
            if rnd.state != S.SEARCHING or unfinished:
                return
        if following == "review":
            if rnd.hyperparameters.get("auto_approve"):
                approved = round_auto_approve(round_id=rnd.pk)
                round_progress(round_id=rnd.pk, auto_approved=approved)
        elif following is not None:
            pipeline.enter(round_id=rnd.pk, stage=following)
            rnd.refresh_from_db()
            _send_stage(rnd, following)
    if following == "review" and rnd.hyperparameters.get("auto_approve"):
        try:
            round_launch(round_id=round_id)
        except LaunchRefused as refused:  # e.g. no pair at all: the round waits in review, saying why
            round_progress(round_id=round_id, launch_refused=str(refused))


# --- cancel, failure, resume -------------------------------------------------------------------------------


def round_cancel(*, round_id: int, user=None) -> TrainingRound:
    """Cancel a round that is not finished: its tasks are revoked and every running stage stops at its next
    progress report; trees, pairs, snapshots and checkpoints made so far are kept."""
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().get(pk=round_id)
        if rnd.state in FINAL:
            raise LaunchRefused(f"round {rnd.number} is already {rnd.state}")
        rnd = round_transition(round_id=round_id, to=S.CANCELLED, error=f"cancelled by {_who(user)}")
        task_ids = list(rnd.task_ids)
    transaction.on_commit(lambda: _revoke(task_ids))
    return rnd


def _revoke(task_ids: list[str]) -> None:
    """Best effort: a broker without broadcast (the embedded filesystem one) cannot revoke; the stages'
    cancellation checks stop the work anyway."""
    if not task_ids:
        return
    try:
        from itool_web.celery import app

        app.control.revoke(task_ids, terminate=False)
    except Exception:  # noqa: BLE001 - revocation is an optimisation, the state check is the guarantee
        pass


def round_fail(*, round_id: int, stage: str, error: str) -> None:
    """Mark a running round failed with the reason and the stage that failed (so it can be resumed)."""
    try:
        round_transition(round_id=round_id, to=S.FAILED, error=error)
    except InvalidTransition:  # already cancelled or finished: nothing to record
        return
    round_progress(round_id=round_id, failed_stage=stage)


def rounds_reap(*, stalled_after: timedelta | None = None, now=None) -> list[int]:
    """Mark failed every round whose worker started a stage and then sent no progress for `stalled_after`
    (default ROUND_STALL_MINUTES): it died — killed, out of memory, machine lost. A stage still waiting in
    the queue for a free worker is not touched. Returns the ids; each can then be resumed."""
    from django.conf import settings

    if stalled_after is None:
        stalled_after = timedelta(minutes=settings.ROUND_STALL_MINUTES)
    now = now or timezone.now()
    reaped = []
    for rnd in TrainingRound.objects.filter(
        state__in=ACTIVE, updated_at__lt=now - stalled_after, progress__has_key="running_stage"
    ):
        stage = STATE_STAGE[rnd.state]
        round_fail(
            round_id=rnd.pk,
            stage=stage,
            error=f"the {stage} worker sent no progress since {rnd.updated_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(over {int(stalled_after.total_seconds())} s): it died or lost its connection",
        )
        reaped.append(rnd.pk)
    return reaped


def round_resume(*, round_id: int, user=None, dispatch: bool = True) -> TrainingRound:
    """Send a failed round's failed stage again. Search resumes from its stored nodes, training from its last
    trainer checkpoint; nothing done before is redone."""
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().get(pk=round_id)
        if rnd.state != S.FAILED:
            raise LaunchRefused(f"round {rnd.number} is {rnd.state}: only a failed round can be resumed")
        stage = rnd.progress.get("failed_stage")
        if stage not in STAGE_STATE:
            raise LaunchRefused(f"round {rnd.number} failed before any stage started: create a new round")
        rnd = round_transition(round_id=round_id, to=STAGE_STATE[stage], error="")
        round_progress(
            round_id=round_id,
            stage=stage,
            failed_stage=None,
            resumed_by=_who(user),
            resumes=rnd.progress.get("resumes", 0) + 1,
        )
        if dispatch:
            _send_stage(rnd, stage)
        return TrainingRound.objects.get(pk=rnd.pk)


class CancelCheck:
    """Called from a stage's progress reports: raises RoundCancelled once the round is cancelled (or has
    left the stage's state), reading the database at most every `every` seconds. Also refreshes the round's
    heartbeat, which `rounds_reap` reads."""

    def __init__(self, round_id: int, state: str, every: float = 2.0):
        import time

        self.round_id, self.state, self.every = round_id, state, every
        self._clock = time.monotonic
        self._last = -every

    def __call__(self) -> None:
        now = self._clock()
        if now - self._last < self.every:
            return
        self._last = now
        state = TrainingRound.objects.filter(pk=self.round_id).values_list("state", flat=True).first()
        if state != self.state:
            raise RoundCancelled(f"round is now {state}")
        TrainingRound.objects.filter(pk=self.round_id).update(updated_at=timezone.now())
