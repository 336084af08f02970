"""Rounds over REST: list and status, create (validated by the round form), launch / cancel / resume with 409 and
the reason when refused. Tasks are captured at commit, never sent."""

import pytest

from apps.datasets.models import DatasetSnapshot
from apps.training.models import TrainingRound
from tests.factories import CheckpointFactory, ProjectFactory, TrainingRoundFactory

from .conftest import client_for

S = TrainingRound.State


def test_rounds_are_listed_with_status_and_progress(api, project, round_, make_pair):
    TrainingRound.objects.filter(pk=round_.pk).update(progress={"stage": "pair", "pairs": 12, "losses": [[1, 0.5]]})
    make_pair(round=round_, status="approved")
    make_pair(round=round_)
    client = api("annotator")
    row = client.get("/api/v1/rounds/", {"project": project.pk}).json()["results"][0]
    assert row["number"] == 1 and row["state"] == "reviewing" and row["policy_in"] == round_.policy_in_id
    assert row["status"]["stage"] == "pair" and row["status"]["progress"] == {"stage": "pair", "pairs": 12}
    detail = client.get(f"/api/v1/rounds/{round_.pk}/").json()
    assert detail["review_gate"]["ok"] is False and detail["review_gate"]["pending"] == 1
    assert detail["review_gate"]["approved"] == 1 and "1 of 2 are not" in detail["review_gate"]["reason"]
    status = client.get(f"/api/v1/rounds/{round_.pk}/status/").json()
    assert status == detail["status"] and status["finished"] is False
    assert client.get("/api/v1/rounds/", {"state": "done"}).json()["results"] == []


def test_admin_creates_a_draft_round_validated_like_the_form(api, project, policy):
    client = api("admin")
    response = client.post(
        "/api/v1/rounds/",
        {
            "project": project.pk,
            "algorithm": "dpo",
            "policy": policy.pk,
            "gate": "fraction_reviewed",
            "gate_value": 0.5,
            "train": {"beta": 0.2},
            "selection": {"method": "pass_rate", "k": 2},
            "search": {"simulations": 3},
            "eval_limit": 40,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["number"], body["state"], body["algorithm"], body["gate"], body["gate_value"]) == (
        0,
        "draft",
        "dpo",
        "fraction_reviewed",
        0.5,
    )
    assert body["hyperparameters"] == {"train": {"beta": 0.2}, "eval_limit": 40}
    assert body["selection"] == {"method": "pass_rate", "k": 2} and body["search_config"] == {"simulations": 3}
    assert body["policy_in"] == policy.pk and body["status"]["state"] == "draft"
    second = client.post("/api/v1/rounds/", {"project": project.pk}, format="json").json()
    assert second["number"] == 1 and second["algorithm"] == "simpo" and second["gate"] == "all_reviewed"


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"train": {"bogus": 1}}, "non_field_errors", "unknown dpo setting(s): bogus"),
        ({"selection": {"method": "vibes"}}, "non_field_errors", "method must be one of perplexity, pass_rate"),
        ({"pairs": {"overlap_max": 2}}, "non_field_errors", "overlap_max must be in [0, 1]"),
        (
            {"gate": "fraction_reviewed", "gate_value": 1.5},
            "non_field_errors",
            "a fraction gate needs a value in (0, 1]",
        ),
        ({"gate_value": "NaN"}, "gate_value", "finite"),
        ({"algorithm": "sft"}, "algorithm", "not a valid choice"),
        ({"train": [1, 2]}, "train", "Expected a JSON object"),
        ({"train": {"note": "a\u0000b"}}, "train", "NUL"),
        ({"policy": 999999}, "policy", "valid choice"),
    ],
)
def test_a_bad_round_is_400_and_creates_nothing(api, project, change, field, message):
    response = api("admin").post(
        "/api/v1/rounds/", {"project": project.pk, "algorithm": "dpo", **change}, format="json"
    )
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field]), response.json()
    assert not TrainingRound.objects.exists()


def test_another_projects_checkpoint_is_no_policy(api, project):
    foreign = CheckpointFactory(project=ProjectFactory(name="elsewhere"))
    response = api("admin").post("/api/v1/rounds/", {"project": project.pk, "policy": foreign.pk}, format="json")
    assert response.status_code == 400 and "policy" in response.json()


def test_only_admins_create_and_launch(api, people, project, round_):
    for who in ("annotator", "reviewer"):
        client = api(who)
        assert client.post("/api/v1/rounds/", {"project": project.pk}, format="json").status_code == 403
        for verb in ("launch", "cancel", "resume"):
            assert client.post(f"/api/v1/rounds/{round_.pk}/{verb}/").status_code == 403
    outsider = client_for(people["outsider"])
    assert outsider.post("/api/v1/rounds/", {"project": project.pk}, format="json").status_code == 404
    assert outsider.get(f"/api/v1/rounds/{round_.pk}/").status_code == 404
    assert outsider.post(f"/api/v1/rounds/{round_.pk}/launch/").status_code == 404
    round_.refresh_from_db()
    assert round_.state == S.REVIEWING and TrainingRound.objects.count() == 1


def test_launch_refused_by_the_gate_says_why_with_the_figures(
    api, round_, make_pair, django_capture_on_commit_callbacks
):
    make_pair(round=round_, status="approved")
    make_pair(round=round_, status="pending")
    with django_capture_on_commit_callbacks() as callbacks:
        response = api("admin").post(f"/api/v1/rounds/{round_.pk}/launch/")
    assert response.status_code == 409
    body = response.json()
    assert body["detail"].startswith("the review gate does not hold") and "1 of 2 are not" in body["detail"]
    assert body["gate"]["ok"] is False and (body["gate"]["pending"], body["gate"]["trainable"]) == (1, 1)
    assert not callbacks and not DatasetSnapshot.objects.exists()
    round_.refresh_from_db()
    assert round_.state == S.REVIEWING


def test_launch_refused_without_a_policy(api, project, django_capture_on_commit_callbacks):
    draft = TrainingRoundFactory(project=project, number=2, state=S.DRAFT, policy_in=None)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api("admin").post(f"/api/v1/rounds/{draft.pk}/launch/")
    assert response.status_code == 409 and "has no policy checkpoint" in response.json()["detail"]
    assert "gate" not in response.json() and not callbacks


def test_launch_a_draft_starts_selection(api, project, policy, django_capture_on_commit_callbacks):
    draft = TrainingRoundFactory(project=project, number=2, state=S.DRAFT, policy_in=policy)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api("admin").post(f"/api/v1/rounds/{draft.pk}/launch/")
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "selecting" and response.json()["stage"] == "select"
    assert response.json()["progress"]["launched_by"] == "admin"
    assert len(callbacks) == 1  # the select task, sent once committed (captured here, not run)


def test_launch_a_reviewed_round_freezes_and_trains(api, round_, make_pair, django_capture_on_commit_callbacks):
    make_pair(round=round_, status="approved")
    make_pair(round=round_, status="rejected")
    with django_capture_on_commit_callbacks() as callbacks:
        response = api("admin").post(f"/api/v1/rounds/{round_.pk}/launch/")
    assert response.status_code == 202, response.content
    body = response.json()
    snapshot = DatasetSnapshot.objects.get()
    assert body["state"] == "training" and body["snapshot"] == snapshot.pk and snapshot.pair_count == 1
    assert len(callbacks) == 1
    again = api("admin").post(f"/api/v1/rounds/{round_.pk}/launch/")
    assert again.status_code == 409 and "is training" in again.json()["detail"]


def test_cancel_then_resume_is_refused(api, round_, django_capture_on_commit_callbacks):
    client = api("admin")
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = client.post(f"/api/v1/rounds/{round_.pk}/cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["error"] == "cancelled by admin"
    for verb, reason in (
        ("cancel", "is already cancelled"),
        ("resume", "only a failed round can be resumed"),
        ("launch", "only a draft round"),
    ):
        refused = client.post(f"/api/v1/rounds/{round_.pk}/{verb}/")
        assert refused.status_code == 409 and reason in refused.json()["detail"], (verb, refused.json())


def test_resume_a_failed_round(api, round_, django_capture_on_commit_callbacks):
    TrainingRound.objects.filter(pk=round_.pk).update(
        state=S.FAILED, progress={"failed_stage": "search"}, error="worker died"
    )
    with django_capture_on_commit_callbacks() as callbacks:
        response = api("admin").post(f"/api/v1/rounds/{round_.pk}/resume/")
    assert response.status_code == 202 and response.json()["state"] == "searching" and response.json()["error"] == ""
    assert len(callbacks) == 1
