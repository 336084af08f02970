"""The round page's eval answers in a real Chromium: an annotator reads the before → after intervals, filters the
answers by kind and deficiency, switches to the policy before the round, and model output that looks like HTML
is shown as text (no script runs)."""

from __future__ import annotations

import pytest

from apps.training.models import Checkpoint, EvalResult, EvalRun, TrainingRound
from tests.factories import QueryFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
EVAL = {
    "n": 4,
    "pass_rate": 0.25,
    "mean_reward": 0.0,
    "deficiencies": {"wrong_value": 1, "malformed": 1, "no_call": 1},
    "by_kind": {"single": {"n": 3, "pass_rate": 0.33}, "irrelevance": {"n": 1, "pass_rate": 0.0}},
}
BEFORE = {**EVAL, "pass_rate": 0.5, "deficiencies": {"wrong_value": 2}}
CHANGES = [
    {
        "key": "group:call_kinds",
        "label": "call kinds pass@1",
        "n": 3,
        "before": 0.33,
        "after": 0.33,
        "diff": 0.0,
        "low": -0.33,
        "high": 0.33,
        "confidence": 0.95,
        "resamples": 10000,
    }
]
# kind, after (output, deficiency), before (output, deficiency)
ANSWERS = [
    ("single", "[get_weather(city='Paris')]", "", "[get_weather(city='Lyon')]", "wrong_value"),
    ("single", "[get_weather(city='Rome')]", "wrong_value", "[get_weather(city='Oslo')]", "wrong_value"),
    ("single", "<img src=x onerror=alert(1)><script>alert(2)</script>", "no_call", "[get_weather(city='Paris')]", ""),
    ("irrelevance", "[get_order_status(user_id=", "malformed", "No tool fits.", ""),
]


@pytest.fixture
def evaluated_round(review_data):
    project = review_data.project
    policy_in = Checkpoint.objects.create(project=project, name="in", path="/m/in", kind="sft")
    policy_out = Checkpoint.objects.create(project=project, name="out", path="/m/out", kind="preference")
    before = EvalRun.objects.create(project=project, checkpoint=policy_in, status="done", n_queries=4, metrics=BEFORE)
    after = EvalRun.objects.create(project=project, checkpoint=policy_out, status="done", n_queries=4, metrics=EVAL)
    for i, (kind, out_after, def_after, out_before, def_before) in enumerate(ANSWERS):
        query = QueryFactory(project=project, external_id=f"eval-{i}", kind=kind, split="eval")
        for run, output, deficiency in ((after, out_after, def_after), (before, out_before, def_before)):
            EvalResult.objects.create(
                eval_run=run,
                query=query,
                kind=kind,
                output=output,
                valid=not deficiency,
                valid_bfcl=deficiency in ("", "malformed"),
                deficiency=deficiency,
                detail=f"because {deficiency or 'right'}",
                reward=0.0,
                expects_call=kind != "irrelevance",
            )
    return TrainingRound.objects.create(
        project=project,
        number=1,
        state="done",
        policy_in=policy_in,
        policy_out=policy_out,
        metrics={
            "eval": EVAL,
            "before": BEFORE,
            "pass_rate_change": -0.25,
            "eval_run": after.pk,
            "before_run": before.pk,
            "changes": CHANGES,
        },
    )


def test_annotator_filters_the_rounds_eval_answers(evaluated_round, open_session):
    s = open_session("annotator")
    page = s.page
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    s.goto(f"/projects/{evaluated_round.project_id}/rounds/1/")
    assert "-33.0 … +33.0" in page.locator("#eval-changes").inner_text()
    rows = page.locator("#failures-table tbody tr")
    assert rows.count() == 3  # every failure after the round
    assert "<script>alert(2)</script>" in page.locator("#failures-table").inner_text()  # shown as text

    page.select_option("#failures-kind", "irrelevance")
    page.locator("#failures-apply").click()
    page.wait_for_url("**kind=irrelevance**")
    assert rows.count() == 1 and rows.first.get_attribute("data-deficiency") == "malformed"
    assert "BFCL rule: right" in rows.first.inner_text() and "No tool fits." in rows.first.inner_text()

    page.select_option("#failures-kind", "single")
    page.select_option("#failures-deficiency", "wrong_value")
    page.locator("#failures-apply").click()
    page.wait_for_url("**deficiency=wrong_value**")
    assert rows.count() == 1 and "city='Rome'" in rows.first.inner_text()

    page.select_option("#failures-side", "before")
    page.locator("#failures-apply").click()
    page.wait_for_url("**side=before**")
    assert rows.count() == 2 and "2 answers before the round match" in page.locator("#failures-count").inner_text()
    s.shot("30-round-eval-answers")
    assert not dialogs and not s.errors
