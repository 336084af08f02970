"""The round lifecycle: numbering, allowed transitions, refused ones with a message."""

import pytest

from apps.training.models import Checkpoint, TrainingRound
from apps.training.services import TRANSITIONS, InvalidTransition, round_create, round_progress, round_transition

S = TrainingRound.State


def test_rounds_are_numbered_and_inherit_the_last_policy(project):
    first = round_create(project=project, algorithm="sft")
    out = Checkpoint.objects.create(project=project, name="warm", path="/x", kind="sft")
    TrainingRound.objects.filter(pk=first.pk).update(policy_out=out)
    second = round_create(project=project)
    assert (first.number, second.number) == (0, 1)
    assert second.policy_in == out and second.algorithm == "simpo"


def test_happy_path_and_timestamps(project):
    rnd = round_create(project=project)
    for to in (S.SELECTING, S.SEARCHING, S.PAIRING, S.REVIEWING, S.TRAINING, S.EVALUATING, S.DONE):
        rnd = round_transition(round_id=rnd.pk, to=to)
    assert rnd.state == S.DONE and rnd.started_at and rnd.finished_at


@pytest.mark.parametrize("start", [s for s in S.values])
def test_every_refused_transition_says_why(project, start):
    rnd = round_create(project=project)
    TrainingRound.objects.filter(pk=rnd.pk).update(state=start)
    for to in S.values:
        if to in TRANSITIONS[start]:
            continue
        with pytest.raises(InvalidTransition, match=f"is {start}: it cannot become {to}"):
            round_transition(round_id=rnd.pk, to=to)
    assert TrainingRound.objects.get(pk=rnd.pk).state == start


def test_failure_keeps_the_reason_and_progress_merges(project):
    rnd = round_create(project=project)
    round_transition(round_id=rnd.pk, to=S.SELECTING)
    round_progress(round_id=rnd.pk, stage="select", done=3)
    round_progress(round_id=rnd.pk, total=10)
    rnd = round_transition(round_id=rnd.pk, to=S.FAILED, error="worker died")
    assert rnd.error == "worker died" and rnd.progress == {"stage": "select", "done": 3, "total": 10}
