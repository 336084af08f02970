"""Snapshots over REST: freeze from a round or a selection, list with the content hash, and export streamed as
JSON Lines — the same bytes every time, with the hash, an ETag and a file name in the headers."""

import json

import pytest

from apps.datasets.models import DatasetSnapshot
from tests.factories import CheckpointFactory, ProjectFactory, QueryFactory, TrainingRoundFactory

from .conftest import client_for

ROW_KEYS = {
    "trl": {"prompt", "chosen", "rejected", "metadata", "prompt_ids", "chosen_ids", "rejected_ids"},
    "openai": {"input", "preferred_output", "non_preferred_output"},
    "sharegpt": {"conversations", "chosen", "rejected", "tools"},
}


@pytest.fixture
def tiny_policy(project, tiny_model_dir):
    """A checkpoint holding the tiny model: its chat template renders the trl prompts."""
    return CheckpointFactory(project=project, name="tiny", path=str(tiny_model_dir))


@pytest.fixture
def reviewed_round(project, tiny_policy, make_pair):
    """A round whose five pairs are reviewed (three approved or edited), over two queries, one in German."""
    rnd = TrainingRoundFactory(project=project, number=1, policy_in=tiny_policy)
    queries = [
        QueryFactory(project=project),
        QueryFactory(
            project=project,
            messages=[{"role": "user", "content": "Wetter in Köln?"}],
            ground_truth=[{"get_weather": {"city": ["Köln"]}}],
        ),
    ]
    for i, status in enumerate(["approved", "edited", "rejected", "approved", "pending"]):
        make_pair(status, round=rnd, query=queries[i % 2], rejected=f"city='Lyon{i}')]")
    return rnd


def read(response) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


def test_freeze_a_round_then_list_and_read_it(api, project, reviewed_round):
    client = api("admin")
    created = client.post("/api/v1/snapshots/", {"project": project.pk, "round": reviewed_round.pk}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    snapshot = DatasetSnapshot.objects.get()
    assert body["id"] == snapshot.pk and body["pair_count"] == 3 and body["content_hash"] == snapshot.content_hash
    assert body["round"] == reviewed_round.pk and body["created_by"] == "admin" and body["name"] == "round 1"
    assert body["filters"] == {"status": ["approved", "edited"], "round": reviewed_round.pk}
    # the same content again is the same snapshot
    again = client.post("/api/v1/snapshots/", {"project": project.pk, "round": reviewed_round.pk}, format="json")
    assert again.status_code == 200 and again.json()["id"] == snapshot.pk
    listed = api("annotator").get("/api/v1/snapshots/", {"project": project.pk}).json()["results"]
    assert [(s["id"], s["content_hash"], s["pair_count"]) for s in listed] == [(snapshot.pk, snapshot.content_hash, 3)]
    assert api("annotator").get(f"/api/v1/snapshots/{snapshot.pk}/").json() == listed[0]


def test_freeze_a_selection(api, project, reviewed_round):
    response = api("admin").post(
        "/api/v1/snapshots/",
        {"project": project.pk, "name": "edited only", "filters": {"status": ["edited"], "min_gap": 0.5}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["pair_count"] == 1 and response.json()["name"] == "edited only"
    assert response.json()["checkpoint"] is not None  # the project's newest renders trl prompts


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"filters": {"colour": "red"}}, "filters", "unknown snapshot filter(s) 'colour'"),
        ({"filters": {"status": ["pending"]}}, "filters", "unknown value(s) ['pending']"),
        ({"filters": {"min_gap": 0.9, "max_gap": 0.1}}, "filters", "is above max_gap"),
        ({"filters": {"deficiency": ["wrong_type"]}}, "non_field_errors", "nothing to freeze"),
        ({"round": 999999}, "round", "No round #999999"),
        ({"checkpoint": 999999}, "checkpoint", "No checkpoint #999999"),
        ({"name": "x" * 201}, "name", "no more than 200"),
    ],
)
def test_a_bad_freeze_is_400_and_freezes_nothing(api, project, reviewed_round, body, field, message):
    response = api("admin").post("/api/v1/snapshots/", {"project": project.pk, **body}, format="json")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field]), response.json()
    assert not DatasetSnapshot.objects.exists()


def test_only_admins_freeze(api, people, project, reviewed_round):
    assert api("reviewer").post("/api/v1/snapshots/", {"project": project.pk}, format="json").status_code == 403
    outsider = client_for(people["outsider"])
    assert outsider.post("/api/v1/snapshots/", {"project": project.pk}, format="json").status_code == 404
    assert not DatasetSnapshot.objects.exists()


@pytest.mark.parametrize("fmt", ["trl", "openai", "sharegpt"])
def test_export_streams_the_same_bytes_with_the_listed_hash(api, project, reviewed_round, fmt):
    client = api("annotator")
    api("admin").post("/api/v1/snapshots/", {"project": project.pk, "round": reviewed_round.pk}, format="json")
    listed = client.get("/api/v1/snapshots/").json()["results"][0]
    url = f"/api/v1/snapshots/{listed['id']}/export/?format={fmt}"
    first, second = client.get(url), client.get(url)
    assert first.status_code == 200 and first["Content-Type"] == "application/x-ndjson"
    assert first["X-Content-Hash"] == listed["content_hash"] == second["X-Content-Hash"]
    assert first["ETag"] == second["ETag"] and listed["content_hash"] in first["ETag"]
    suffix = "-fragment" if fmt == "trl" else ""
    assert first["Content-Disposition"] == f'attachment; filename="snapshot-{listed["id"]}-{fmt}{suffix}.jsonl"'
    data = read(first)
    assert data == read(second) and "Köln".encode() in data
    rows = [json.loads(line) for line in data.splitlines()]
    assert len(rows) == listed["pair_count"] == 3
    assert all(set(row) == ROW_KEYS[fmt] for row in rows)
    unchanged = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert unchanged.status_code == 304 and not unchanged.content


def test_trl_spans_put_the_prefix_in_the_prompt_or_the_completions(api, project, reviewed_round):
    snapshot = (
        api("admin")
        .post("/api/v1/snapshots/", {"project": project.pk, "round": reviewed_round.pk}, format="json")
        .json()
    )
    client = api("annotator")
    fragment = json.loads(read(client.get(f"/api/v1/snapshots/{snapshot['id']}/export/?format=trl")).splitlines()[0])
    completion = json.loads(
        read(client.get(f"/api/v1/snapshots/{snapshot['id']}/export/?format=trl&span=completion")).splitlines()[0]
    )
    assert fragment["prompt"].endswith("[get_weather(") and fragment["chosen"] == "city='Paris')]"
    assert completion["chosen"] == "[get_weather(city='Paris')]"
    assert fragment["metadata"]["snapshot_hash"] == snapshot["content_hash"]


def test_complete_exports_are_their_own_variant(api, project, reviewed_round):
    """`complete=true`: whole answers (these pairs' sides end already: the same rows), its own ETag and file name."""
    snapshot = (
        api("admin")
        .post("/api/v1/snapshots/", {"project": project.pk, "round": reviewed_round.pk}, format="json")
        .json()
    )
    client = api("annotator")
    url = f"/api/v1/snapshots/{snapshot['id']}/export/?format=sharegpt"
    plain, complete = client.get(url), client.get(url + "&complete=true")
    assert complete.status_code == 200 and complete["ETag"] != plain["ETag"]
    assert complete["Content-Disposition"].endswith(f'snapshot-{snapshot["id"]}-sharegpt-complete.jsonl"')
    assert read(complete) == read(plain)


@pytest.mark.parametrize(
    "query, field",
    [
        ("format=parquet", "format"),
        ("", "format"),
        ("format=trl&span=all", "span"),
        ("format=trl&complete=maybe", "complete"),
    ],
)
def test_a_bad_export_format_is_400(api, project, reviewed_round, query, field):
    snapshot = (
        api("admin")
        .post("/api/v1/snapshots/", {"project": project.pk, "round": reviewed_round.pk}, format="json")
        .json()
    )
    response = api("annotator").get(f"/api/v1/snapshots/{snapshot['id']}/export/?{query}")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert field in response.json()


def test_a_trl_export_needs_a_checkpoint(api, project, make_pair):
    make_pair("approved")
    bare = DatasetSnapshot.objects.create(project=project, name="no checkpoint", content_hash="x" * 64)
    bare.items.create(ordinal=0, query=QueryFactory(project=project), chosen="a", rejected="b", status="approved")
    client = api("annotator")
    response = client.get(f"/api/v1/snapshots/{bare.pk}/export/?format=trl")
    assert response.status_code == 400 and "has no checkpoint" in response.json()["format"][0]
    assert client.get(f"/api/v1/snapshots/{bare.pk}/export/?format=openai").status_code == 200


def test_other_projects_snapshots_are_404(api, people):
    elsewhere = ProjectFactory(name="elsewhere")
    hidden = DatasetSnapshot.objects.create(project=elsewhere, name="theirs", content_hash="y" * 64)
    client = api("admin")
    assert client.get(f"/api/v1/snapshots/{hidden.pk}/").status_code == 404
    assert client.get(f"/api/v1/snapshots/{hidden.pk}/export/?format=openai").status_code == 404
    assert client.get("/api/v1/snapshots/").json()["results"] == []
