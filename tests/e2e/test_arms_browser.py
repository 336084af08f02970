"""The arms page in a real Chromium: an admin launches arms (tasks recorded, not sent), watches a run's progress
update live, and reads the table and the interval chart once the runs are done; an annotator sees the results but
no launch form, and a forged launch is refused."""

from __future__ import annotations

import pytest

from apps.arms.models import ArmRun
from apps.arms.services import arm_progress
from apps.training.models import Checkpoint, EvalRun, TrainingRound
from tests.factories import TrainingRoundFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _eval(round_, checkpoint, query_ids, passed, deficiencies):
    from apps.training.models import EvalResult

    n = len(query_ids)
    metrics = {
        "n": n,
        "pass_rate": sum(passed) / n,
        "over_refusal": 0.25,
        "deficiencies": deficiencies,
        "by_kind": {"single": {"n": n, "pass_rate": sum(passed) / n}},
    }
    run = EvalRun.objects.create(
        project=round_.project, checkpoint=checkpoint, round=round_, status="done", n_queries=n, metrics=metrics
    )
    EvalResult.objects.bulk_create(
        [
            EvalResult(
                eval_run=run,
                query_id=q,
                kind="single",
                valid=ok,
                valid_bfcl=ok,
                reward=1.0 if ok else -1.0,
                deficiency="" if ok else "wrong_value",
            )
            for q, ok in zip(query_ids, passed)
        ]
    )
    return run


@pytest.fixture
def sent(monkeypatch):
    from workers import tasks

    calls = []
    monkeypatch.setattr(tasks.training_arm_run, "apply_async", lambda args, task_id: calls.append(args[0]))
    return calls


@pytest.fixture
def arms_page_round(review_data, tmp_path):
    """Round 1 of the e2e project: reviewed and frozen (its one approved pair), input policy in a real folder."""
    from apps.curation.models import PreferencePair
    from apps.datasets.services import snapshot_freeze

    project = review_data.project
    (tmp_path / "policy").mkdir()
    policy = Checkpoint.objects.create(project=project, name="warm-policy", path=str(tmp_path / "policy"), kind="sft")
    rnd = TrainingRoundFactory(
        project=project,
        number=1,
        state=TrainingRound.State.REVIEWING,
        policy_in=policy,
        hyperparameters={"train": {"max_steps": 4, "batch_size": 2}},
    )
    pair = review_data.queue[0]
    PreferencePair.objects.filter(pk=pair.pk).update(round=rnd, status="approved")
    review_data.tree.round = rnd
    review_data.tree.save(update_fields=["round"])
    TrainingRound.objects.filter(pk=rnd.pk).update(
        snapshot=snapshot_freeze(project=project, round=rnd, checkpoint=policy)
    )
    rnd.refresh_from_db()
    return rnd


def test_admin_launches_arms_watches_and_reads_the_table(review_data, arms_page_round, open_session, sent):
    project, rnd = review_data.project, arms_page_round
    s = open_session("admin")
    page = s.page
    s.goto(f"/projects/{project.pk}/rounds/1/arms/")
    assert page.locator("#no-arms").is_visible()
    # step_pairs and unreviewed have the round's pair; the others have no data here: launching all is refused
    page.get_by_role("button", name="Launch arms").click()
    assert "Arms not launched: arm 'whole_pairs' has no data" in page.locator(".messages").inner_text()
    assert not ArmRun.objects.exists() and not sent
    for name in ("whole_pairs", "rft", "sft", "grpo"):
        page.locator(f"input[name=arms][value={name}]").uncheck()
    page.fill("#seeds", "2")
    page.get_by_role("button", name="Launch arms").click()
    page.locator(".messages", has_text="5 arm run(s) sent").wait_for()
    assert len(sent) == 5 and page.locator("#arm-runs tbody tr").count() == 5
    assert "4 × 2" in page.locator("#arm-runs").inner_text()  # the round's budget: 4 steps of 2
    s.shot("40-arms-launched")

    # a worker reports progress: the page shows it without a reload
    run = ArmRun.objects.get(round=rnd, arm="step_pairs", seed=0)
    ArmRun.objects.filter(pk=run.pk).update(status="running")
    arm_progress(arm_run_id=run.pk, stage="train", step=3, max_steps=4, loss=0.6931)
    page.locator(f"#arm-runs tr[data-run='{run.pk}'] [data-progress]", has_text="train 3/4 loss 0.6931").wait_for()

    # every run finishes: the page reloads itself with the table and the chart
    queries = [q.pk for q in type(review_data.queue[0].query).objects.filter(project=project)][:4]
    for row in ArmRun.objects.filter(round=rnd):
        passed = {"input": [1, 0, 0, 0], "step_pairs": [1, 1, 1, 0], "unreviewed": [1, 1, 0, 0]}[row.arm]
        ckpt = (
            rnd.policy_in
            if row.arm == "input"
            else Checkpoint.objects.create(project=project, name=f"{row.arm}-{row.seed}", path="/x", kind="preference")
        )
        ArmRun.objects.filter(pk=row.pk).update(
            status="done",
            checkpoint=ckpt,
            progress={"stage": "done"},
            eval_run=_eval(rnd, ckpt, queries, passed, {"wrong_value": 4 - sum(passed)}),
        )
    page.locator("#arms-chart .interval").first.wait_for()
    table = page.locator("#arms-table").inner_text()
    assert "step_pairs" in table and "75%" in table and "+50.0 points" in table
    assert page.locator("#arms-chart .interval").count() == 6  # 2 arms × (all, call kinds, single)
    assert "wrong_value 1.0" in page.locator("#arms-deficiencies").inner_text()
    s.shot("41-arms-table")


def test_annotator_sees_arms_but_cannot_launch(review_data, arms_page_round, open_session, sent):
    project = review_data.project
    ArmRun.objects.create(round=arms_page_round, arm="sft", status="failed", error="ValueError: boom")
    s = open_session("annotator")
    page = s.page
    s.goto(f"/projects/{project.pk}/rounds/1/arms/")
    assert page.locator("#launch-arms").count() == 0
    assert "ValueError: boom" in page.locator("#arm-runs").inner_text()
    status = page.evaluate(f"""async () => {{
        const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken='))?.split('=')[1];
        const r = await fetch('/projects/{project.pk}/rounds/1/arms/launch/', {{method: 'POST',
            headers: {{'X-CSRFToken': token}}}});
        return r.status; }}""")
    assert status == 403
    assert ArmRun.objects.count() == 1 and not sent
    s.shot("42-arms-annotator")
