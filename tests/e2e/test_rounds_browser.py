"""Rounds in a real Chromium: an admin creates a round, is refused a launch with the gate's reason, launches
once the pairs are reviewed, watches the stage figures update live, cancels, and compares finished rounds on
the chart; an annotator sees the rounds but no launch or cancel button, and a forged launch is refused.
The tasks a launch sends are recorded instead of sent (no worker runs in these tests; tests/workers runs
the same launches on real workers)."""

from __future__ import annotations

import pytest

from apps.training import lifecycle
from apps.training.models import Checkpoint, TrainingRound
from apps.training.services import round_progress
from tests.factories import PairFactory, TrainingRoundFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
S = TrainingRound.State
EVAL = {
    "n": 20,
    "pass_rate": 0.55,
    "mean_reward": 0.3,
    "deficiencies": {"wrong_value": 6},
    "by_kind": {"single": {"n": 10, "pass_rate": 0.8}, "parallel": {"n": 10, "pass_rate": 0.3}},
}


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(lifecycle, "_send_stage", lambda rnd, stage: calls.append((rnd.pk, stage)))
    return calls


def test_admin_launches_watches_cancels_and_compares_rounds(review_data, open_session, sent):
    project = review_data.project
    policy = Checkpoint.objects.create(project=project, name="warm-policy", path="/models/warm", kind="sft")
    TrainingRoundFactory(
        project=project,
        number=0,
        state=S.DONE,
        algorithm="sft",
        policy_out=policy,
        metrics={"eval": {**EVAL, "pass_rate": 0.4}},
    )
    TrainingRoundFactory(
        project=project,
        number=1,
        state=S.DONE,
        policy_in=policy,
        policy_out=policy,
        metrics={"eval": EVAL, "before": {**EVAL, "pass_rate": 0.4}, "pass_rate_change": 0.15},
    )
    s = open_session("admin")
    page = s.page

    # create round 2 through the form (a typo in the settings is refused first)
    s.goto(f"/projects/{project.pk}/rounds/")
    assert page.locator("#pass-rate-chart polyline").count() >= 1
    page.select_option("#id_algorithm", "simpo")
    page.fill("#id_train", '{"betta": 2}')
    page.get_by_role("button", name="Create draft round").click()
    assert "betta" in page.locator(".notice.error").inner_text()
    page.fill("#id_train", '{"beta": 2.0, "max_steps": 5}')
    page.select_option("#id_policy", str(policy.pk))
    page.get_by_role("button", name="Create draft round").click()
    page.wait_for_url(f"**/projects/{project.pk}/rounds/2/")
    rnd = TrainingRound.objects.get(project=project, number=2)
    assert rnd.state == S.DRAFT and rnd.hyperparameters["train"] == {"beta": 2.0, "max_steps": 5}
    s.shot("20-round-draft")

    # pretend the search found two pairs: one pending keeps the gate shut
    TrainingRound.objects.filter(pk=rnd.pk).update(state=S.REVIEWING)
    pending = PairFactory(project=project, round=rnd, status="pending", dedup_key="r2-a")
    PairFactory(project=project, round=rnd, status="approved", dedup_key="r2-b")
    page.reload()
    assert "does not hold" in page.locator("#gate").inner_text()
    page.get_by_role("button", name="Launch training").click()
    refused = page.locator(".messages").inner_text()
    assert "Launch refused: the review gate does not hold" in refused and "1 pending" in refused
    assert not sent
    s.shot("21-round-gate-refused")

    PairFactory._meta.model.objects.filter(pk=pending.pk).update(status="approved")
    page.reload()
    page.get_by_role("button", name="Launch training").click()
    page.locator(".messages", has_text="launched: it is training").wait_for()
    assert sent == [(rnd.pk, "train")]
    assert "2 pairs" in page.locator(".meta").inner_text()  # the frozen snapshot

    # a worker reports progress: the page shows it without a reload
    round_progress(round_id=rnd.pk, stage="train", step=3, max_steps=5, loss=0.6931, loss_point=(3, 0.6931))
    page.locator("#stage-figures", has_text="step 3").wait_for()
    assert "loss 0.6931" in page.locator("#stage-figures").inner_text()
    s.shot("22-round-training")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    page.locator(".messages", has_text="cancelled").wait_for()
    assert TrainingRound.objects.get(pk=rnd.pk).state == S.CANCELLED
    assert page.locator("#round-state").inner_text() == "cancelled"

    s.goto(f"/projects/{project.pk}/rounds/1/")
    assert "40.0% → 55.0%" in page.locator("#eval-summary").inner_text()
    s.shot("23-round-done")
    s.goto(f"/projects/{project.pk}/rounds/")
    assert page.locator("#round-compare tbody tr").count() == 2  # rounds 0 and 1 have evaluations
    s.shot("24-rounds-compare")


def test_annotator_sees_rounds_but_cannot_launch(review_data, open_session, sent):
    project = review_data.project
    policy = Checkpoint.objects.create(project=project, name="p", path="/models/p", kind="tiny")
    rnd = TrainingRoundFactory(project=project, number=1, state=S.REVIEWING, policy_in=policy)
    PairFactory(project=project, round=rnd, status="approved", dedup_key="a-1")
    s = open_session("annotator")
    page = s.page
    s.goto(f"/projects/{project.pk}/rounds/1/")
    assert page.locator("#launch").count() == 0 and page.locator("#cancel").count() == 0
    assert page.locator("#new-round").count() == 0
    # a forged launch (the form the admin would post) is refused and changes nothing
    status = page.evaluate(f"""async () => {{
        const token = document.querySelector('input[name=csrfmiddlewaretoken]')?.value
            || document.cookie.split('; ').find(c => c.startsWith('csrftoken='))?.split('=')[1];
        const r = await fetch('/projects/{project.pk}/rounds/1/launch/', {{method: 'POST',
            headers: {{'X-CSRFToken': token}}}});
        return r.status; }}""")
    assert status == 403
    assert TrainingRound.objects.get(pk=rnd.pk).state == S.REVIEWING and not sent
    s.shot("25-round-annotator")
