"""Arm runs over REST: members list a round's runs, admins launch arms (tasks captured at commit, never sent),
annotators and reviewers cannot, bad bodies are 400 and refusals 409 with nothing written."""

import pytest

from apps.arms.models import ArmRun
from tests.factories import ProjectFactory, TrainingRoundFactory

from .conftest import client_for


@pytest.fixture
def sent(monkeypatch):
    from workers import tasks

    calls = []
    monkeypatch.setattr(tasks.training_arm_run, "apply_async", lambda args, task_id: calls.append(args[0]))
    return calls


def test_members_list_the_runs_of_a_round(api, round_, people):
    ArmRun.objects.create(round=round_, arm="input", status="done", metrics={"eval": {"pass_rate": 0.5}})
    ArmRun.objects.create(
        round=round_,
        arm="sft",
        seed=1,
        status="running",
        progress={"stage": "train", "step": 3},
        budget={"steps": 8, "batch": 4},
    )
    other = TrainingRoundFactory(project=ProjectFactory(name="elsewhere"), number=1)
    ArmRun.objects.create(round=other, arm="sft")
    for who in ("annotator", "reviewer", "admin"):
        body = api(who).get("/api/v1/arm-runs/", {"round": round_.pk}).json()
        assert [(r["arm"], r["seed"], r["status"]) for r in body["results"]] == [
            ("input", 0, "done"),
            ("sft", 1, "running"),
        ]
    row = api("annotator").get("/api/v1/arm-runs/", {"round": round_.pk, "arm": "sft"}).json()["results"][0]
    assert row["budget"] == {"steps": 8, "batch": 4} and row["progress"]["step"] == 3
    assert len(api("annotator").get("/api/v1/arm-runs/").json()["results"]) == 2  # not the other project's
    assert client_for(people["outsider"]).get("/api/v1/arm-runs/").json()["results"] == []
    assert api("annotator").get("/api/v1/arm-runs/", {"arm": "bogus"}).status_code == 400


@pytest.mark.parametrize("who", ["annotator", "reviewer"])
def test_only_admins_launch_arms(api, arms_round_api, who, sent):
    response = api(who).post("/api/v1/arm-runs/launch/", {"round": arms_round_api.pk, "arms": ["sft"]}, format="json")
    assert response.status_code == 403
    assert not ArmRun.objects.exists() and not sent


def test_an_admin_launches_arms(api, arms_round_api, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api("admin").post(
            "/api/v1/arm-runs/launch/", {"round": arms_round_api.pk, "arms": ["sft", "rft"], "seeds": 2}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert sorted((r["arm"], r["seed"]) for r in body) == [("input", 0), ("rft", 0), ("rft", 1), ("sft", 0), ("sft", 1)]
    assert sorted(sent) == sorted(r["id"] for r in body) and all(r["status"] == "pending" for r in body)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"arms": ["sft", "ppo"]}, 400, "not a valid choice"),
        ({"arms": []}, 400, "may not be empty"),
        ({"seeds": 0}, 400, "greater than or equal to 1"),
        ({"round": 987654}, 404, "No such round"),
        ({"arms": ["whole_pairs"]}, 409, "arm 'whole_pairs' has no data"),
    ],
)
def test_bad_launches_write_nothing(api, arms_round_api, body, status, message, sent):
    response = api("admin").post("/api/v1/arm-runs/launch/", {"round": arms_round_api.pk, **body}, format="json")
    assert response.status_code == status and message in response.content.decode(), response.content
    assert not ArmRun.objects.exists() and not sent


def test_a_round_of_a_project_you_are_not_in_is_404(api, sent):
    rnd = TrainingRoundFactory(project=ProjectFactory(name="not-mine"), number=1)
    response = api("admin").post("/api/v1/arm-runs/launch/", {"round": rnd.pk}, format="json")
    assert response.status_code == 404 and not sent


@pytest.fixture
def arms_round_api(project, people, tiny_model_dir):
    """A reviewed, frozen round of `project` with one approved step-level pair and a correct rollout in its tree
    (so sft and rft have data; whole_pairs has none: the tree's rollouts all score the same)."""
    from apps.datasets.services import snapshot_freeze
    from apps.training.models import Checkpoint, RoundQuery
    from tests.factories import PairFactory, QueryFactory, SearchTreeFactory, TreeNodeFactory

    policy = Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    rnd = TrainingRoundFactory(
        project=project,
        number=1,
        state="reviewing",
        policy_in=policy,
        hyperparameters={"train": {"max_steps": 2, "batch_size": 2}},
    )
    query = QueryFactory(project=project, reference_output="[get_weather(city='Paris')]")
    RoundQuery.objects.create(round=rnd, query=query, score=1.0, selected=True)
    tree = SearchTreeFactory(project=project, round=rnd, query=query)
    root = TreeNodeFactory(tree=tree, key="root")
    TreeNodeFactory(
        tree=tree,
        parent=root,
        key="a",
        fragment="[get_weather(city='Paris')]",
        is_terminal=True,
        terminal_reward=1.0,
        verdict={"valid": True},
    )
    PairFactory(project=project, round=rnd, query=query, tree=tree, status="approved")
    snapshot = snapshot_freeze(project=project, round=rnd)
    rnd.snapshot = snapshot
    rnd.save(update_fields=["snapshot"])
    return rnd
