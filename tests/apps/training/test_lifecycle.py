"""Launch, the review gate, cancel, failure and resume: what admins do to rounds and what workers do between
stages. Tasks are captured at commit, never sent: these tests need no worker."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.curation.models import PreferencePair
from apps.datasets.models import DatasetSnapshot
from apps.search.models import SearchTree
from apps.training.lifecycle import (
    CancelCheck,
    LaunchRefused,
    RoundCancelled,
    round_cancel,
    round_gate,
    round_launch,
    round_resume,
    rounds_reap,
    stage_finished,
)
from apps.training.models import Checkpoint, TrainingRound
from apps.training.services import MAX_LOSS_POINTS, round_progress
from tests.factories import PairFactory, SearchTreeFactory, TrainingRoundFactory, UserFactory

S = TrainingRound.State


@pytest.fixture
def policy(project):
    return Checkpoint.objects.create(project=project, name="policy", path="/models/policy", kind="tiny")


@pytest.fixture
def reviewing(project, policy):
    return TrainingRoundFactory(project=project, number=1, state=S.REVIEWING, policy_in=policy)


def pairs(rnd, *statuses):
    return [
        PairFactory(project=rnd.project, round=rnd, status=status, chosen=f"city='Paris{i}')]")
        for i, status in enumerate(statuses)
    ]


# --- the gate ---------------------------------------------------------------------------------------------


def test_all_reviewed_gate_counts_pending_and_flagged(reviewing):
    pairs(reviewing, "approved", "edited", "pending", "flagged", "rejected")
    gate = round_gate(reviewing)
    assert not gate.ok
    assert (gate.total, gate.pending, gate.flagged, gate.trainable, gate.reviewed) == (5, 1, 1, 2, 3)
    assert "2 of 5 are not" in gate.reason and "1 pending, 1 flagged" in gate.reason


def test_all_reviewed_gate_holds_when_nothing_waits(reviewing):
    pairs(reviewing, "approved", "rejected", "edited")
    assert round_gate(reviewing).ok


@pytest.mark.parametrize("value, ok", [(0.5, True), (0.75, False)])
def test_fraction_gate(reviewing, value, ok):
    TrainingRound.objects.filter(pk=reviewing.pk).update(gate="fraction_reviewed", gate_value=value)
    reviewing.refresh_from_db()
    pairs(reviewing, "approved", "rejected", "pending", "pending")
    gate = round_gate(reviewing)
    assert gate.ok is ok and "50% reviewed" in gate.reason


@pytest.mark.parametrize("value, ok", [(2, True), (3, False)])
def test_min_approved_gate(reviewing, value, ok):
    TrainingRound.objects.filter(pk=reviewing.pk).update(gate="min_approved", gate_value=value)
    reviewing.refresh_from_db()
    pairs(reviewing, "approved", "edited", "pending", "rejected")
    assert round_gate(reviewing).ok is ok


def test_a_gate_never_holds_without_an_approved_pair(reviewing):
    pairs(reviewing, "rejected", "rejected")
    gate = round_gate(reviewing)
    assert not gate.ok and "no approved pair" in gate.reason


def test_grpo_rounds_have_no_review(reviewing):
    TrainingRound.objects.filter(pk=reviewing.pk).update(algorithm="grpo")
    reviewing.refresh_from_db()
    assert round_gate(reviewing).ok


# --- launch -----------------------------------------------------------------------------------------------


def test_refused_launch_changes_nothing_and_sends_nothing(reviewing, django_capture_on_commit_callbacks):
    pairs(reviewing, "approved", "pending")
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(LaunchRefused) as refused:
        round_launch(round_id=reviewing.pk)
    assert "review gate does not hold" in str(refused.value) and "1 pending" in str(refused.value)
    assert refused.value.gate.pending == 1
    reviewing.refresh_from_db()
    assert reviewing.state == S.REVIEWING and reviewing.snapshot is None and not reviewing.task_ids
    assert not DatasetSnapshot.objects.exists() and not callbacks


def test_launch_freezes_the_reviewed_pairs_and_sends_training(reviewing, django_capture_on_commit_callbacks):
    approved, edited, rejected = pairs(reviewing, "approved", "edited", "rejected")
    admin = UserFactory(username="boss")
    with django_capture_on_commit_callbacks() as callbacks:
        rnd = round_launch(round_id=reviewing.pk, user=admin)
    assert rnd.state == S.TRAINING and rnd.snapshot is not None
    assert len(callbacks) == 1 and len(rnd.task_ids) == 1
    frozen = set(rnd.snapshot.items.values_list("pair_id", flat=True))
    assert frozen == {approved.pk, edited.pk}
    assert rnd.progress["gate"]["trainable"] == 2 and rnd.progress["launched_by"] == "boss"
    with pytest.raises(LaunchRefused, match="is training"):
        round_launch(round_id=rnd.pk)


def test_launching_a_draft_starts_selection(project, policy, django_capture_on_commit_callbacks):
    rnd = TrainingRoundFactory(project=project, number=1, state=S.DRAFT, policy_in=policy)
    with django_capture_on_commit_callbacks() as callbacks:
        rnd = round_launch(round_id=rnd.pk)
    assert rnd.state == S.SELECTING and rnd.progress["stage"] == "select" and len(callbacks) == 1


def test_launching_round_zero_trains_at_once(project, policy, django_capture_on_commit_callbacks):
    rnd = TrainingRoundFactory(project=project, number=0, state=S.DRAFT, policy_in=policy, algorithm="sft")
    with django_capture_on_commit_callbacks() as callbacks:
        rnd = round_launch(round_id=rnd.pk)
    assert rnd.state == S.TRAINING and len(callbacks) == 1


def test_a_round_without_a_policy_cannot_launch(project):
    rnd = TrainingRoundFactory(project=project, number=1, state=S.DRAFT)
    with pytest.raises(LaunchRefused, match="no policy checkpoint"):
        round_launch(round_id=rnd.pk)
    assert TrainingRound.objects.get(pk=rnd.pk).state == S.DRAFT


# --- stages hand over ---------------------------------------------------------------------------------------


def test_the_last_search_shard_sends_the_pair_stage_once(project, policy, django_capture_on_commit_callbacks):
    rnd = TrainingRoundFactory(project=project, number=1, state=S.SEARCHING, policy_in=policy)
    SearchTreeFactory(project=project, round=rnd, status="done")
    second = SearchTreeFactory(project=project, round=rnd, status="running")
    with django_capture_on_commit_callbacks() as callbacks:
        stage_finished(round_id=rnd.pk, stage="search")  # one shard done, the other still running
    assert not callbacks
    SearchTree.objects.filter(pk=second.pk).update(status="done")
    with django_capture_on_commit_callbacks() as callbacks:
        stage_finished(round_id=rnd.pk, stage="search")
        stage_finished(round_id=rnd.pk, stage="search")  # a second shard ending at the same time
    assert len(callbacks) == 1


def test_auto_approve_approves_and_launches(project, policy, django_capture_on_commit_callbacks):
    rnd = TrainingRoundFactory(
        project=project, number=1, state=S.REVIEWING, policy_in=policy, hyperparameters={"auto_approve": True}
    )
    made = pairs(rnd, "pending", "pending", "rejected")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        stage_finished(round_id=rnd.pk, stage="pair")
    rnd.refresh_from_db()
    assert rnd.state == S.TRAINING and rnd.progress["auto_approved"] == 2
    assert PreferencePair.objects.get(pk=made[0].pk).status == "approved"
    assert PreferencePair.objects.get(pk=made[2].pk).status == "rejected"  # a person's decision stands
    assert rnd.snapshot.pair_count == 2 and len(callbacks) == 1


def test_stage_end_of_a_cancelled_round_sends_nothing(reviewing, django_capture_on_commit_callbacks):
    TrainingRound.objects.filter(pk=reviewing.pk).update(state=S.CANCELLED)
    with django_capture_on_commit_callbacks() as callbacks:
        stage_finished(round_id=reviewing.pk, stage="train")
    assert not callbacks


# --- cancel, failure, resume -----------------------------------------------------------------------------------


def test_cancel_keeps_data_and_stops_running_stages(reviewing):
    made = pairs(reviewing, "approved")
    rnd = round_launch(round_id=reviewing.pk)
    check = CancelCheck(rnd.pk, S.TRAINING, every=0)
    check()  # still training: no exception
    rnd = round_cancel(round_id=rnd.pk, user=UserFactory(username="ops"))
    assert rnd.state == S.CANCELLED and rnd.error == "cancelled by ops" and rnd.finished_at
    with pytest.raises(RoundCancelled):
        check()
    assert PreferencePair.objects.filter(pk=made[0].pk).exists() and DatasetSnapshot.objects.count() == 1
    with pytest.raises(LaunchRefused, match="already cancelled"):
        round_cancel(round_id=rnd.pk)


def test_a_silent_worker_is_reaped_then_resumed(reviewing, django_capture_on_commit_callbacks):
    pairs(reviewing, "approved")
    rnd = round_launch(round_id=reviewing.pk)
    TrainingRound.objects.filter(pk=rnd.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert rounds_reap(stalled_after=timedelta(minutes=30)) == []  # queued: no worker has taken the stage yet
    round_progress(round_id=rnd.pk, step=7, max_steps=20, running_stage="train")
    assert rounds_reap(stalled_after=timedelta(minutes=30)) == []  # it just reported
    TrainingRound.objects.filter(pk=rnd.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert rounds_reap(stalled_after=timedelta(minutes=30)) == [rnd.pk]
    rnd.refresh_from_db()
    assert rnd.state == S.FAILED and "train worker sent no progress" in rnd.error
    assert rnd.progress["failed_stage"] == "train"
    with django_capture_on_commit_callbacks() as callbacks:
        rnd = round_resume(round_id=rnd.pk)
    assert rnd.state == S.TRAINING and rnd.error == "" and rnd.finished_at is None and len(callbacks) == 1
    assert rnd.progress["resumes"] == 1 and "failed_stage" not in rnd.progress
    with pytest.raises(LaunchRefused, match="only a failed round"):
        round_resume(round_id=rnd.pk)


def test_loss_curve_is_kept_bounded(reviewing):
    for step in range(MAX_LOSS_POINTS * 3):
        round_progress(round_id=reviewing.pk, loss_point=(step, 1.0 / (step + 1)))
    curve = TrainingRound.objects.get(pk=reviewing.pk).progress["losses"]
    assert len(curve) <= MAX_LOSS_POINTS
    assert curve[-1] == [MAX_LOSS_POINTS * 3 - 1, pytest.approx(1.0 / (MAX_LOSS_POINTS * 3))]
    assert [p[0] for p in curve] == sorted(p[0] for p in curve) and curve[0][0] == 0
