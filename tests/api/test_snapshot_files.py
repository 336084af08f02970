"""Parquet snapshot files over REST: project admins ask for one (202), any member lists them and downloads one
when it is done (409 with its status until then); the bytes are those whose sha256 was recorded."""

import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from apps.datasets.models import DatasetSnapshot, SnapshotFile
from apps.datasets.services import snapshot_file_build
from tests.factories import CheckpointFactory, ProjectFactory, QueryFactory, TrainingRoundFactory

from .conftest import client_for


@pytest.fixture
def snapshot(api, project, tiny_model_dir, make_pair, media):
    """A frozen round of three approved pairs, one query in German."""
    policy = CheckpointFactory(project=project, name="tiny", path=str(tiny_model_dir))
    rnd = TrainingRoundFactory(project=project, number=1, policy_in=policy)
    german = QueryFactory(project=project, messages=[{"role": "user", "content": "Wetter in Köln?"}])
    for i in range(3):
        make_pair("approved", round=rnd, rejected=f"city='Lyon{i}')]", **({"query": german} if i == 1 else {}))
    created = api("admin").post("/api/v1/snapshots/", {"project": project.pk, "round": rnd.pk}, format="json")
    assert created.status_code == 201, created.content
    return DatasetSnapshot.objects.get(pk=created.json()["id"])


def ask(client, snapshot, body, capture, execute=False):
    with capture(execute=execute) as callbacks:
        response = client.post(f"/api/v1/snapshots/{snapshot.pk}/files/", body, format="json")
    return response, callbacks


def test_ask_poll_then_download_the_recorded_bytes(api, snapshot, django_capture_on_commit_callbacks):
    admin, annotator = api("admin"), api("annotator")
    asked, callbacks = ask(admin, snapshot, {"format": "trl", "span": "completion"}, django_capture_on_commit_callbacks)
    assert asked.status_code == 202, asked.content
    body = asked.json()
    assert len(callbacks) == 1  # the task goes out when the request's transaction commits
    assert (body["snapshot"], body["format"], body["span"], body["kind"], body["status"]) == (
        snapshot.pk,
        "trl",
        "completion",
        "parquet",
        "pending",
    )
    assert body["download"] == f"/api/v1/snapshot-files/{body['id']}/download/" and body["created_by"] == "admin"

    # not ready: 409 with the status, for anyone who may read it
    waiting = annotator.get(body["download"])
    assert waiting.status_code == 409 and waiting.json()["status"] == "pending"
    assert "not ready yet: it is pending" in waiting.json()["detail"]
    SnapshotFile.objects.filter(pk=body["id"]).update(status="running", rows=2)
    running = annotator.get(body["download"]).json()
    assert running["status"] == "running" and running["rows"] == 2

    snapshot_file_build(file_id=body["id"])  # what the worker does
    polled = annotator.get(f"/api/v1/snapshot-files/{body['id']}/").json()
    assert polled["status"] == "done" and polled["rows"] == 3 and len(polled["sha256"]) == 64
    listed = annotator.get(f"/api/v1/snapshots/{snapshot.pk}/files/")
    assert listed.status_code == 200 and listed.json() == [polled]

    download = annotator.get(body["download"])
    assert download.status_code == 200 and download["Content-Type"] == "application/vnd.apache.parquet"
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == polled["sha256"] and len(data) == polled["bytes"]
    assert download["ETag"] == f'"{polled["sha256"]}"'
    assert download["Content-Disposition"] == f'attachment; filename="snapshot-{snapshot.pk}-trl-completion.parquet"'
    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    exported = annotator.get(f"/api/v1/snapshots/{snapshot.pk}/export/?format=trl&span=completion")
    assert rows == [json.loads(line) for line in b"".join(exported.streaming_content).splitlines()]

    # asked again: the same file, ready (200), and no task sent
    again, callbacks = ask(admin, snapshot, {"format": "trl", "span": "completion"}, django_capture_on_commit_callbacks)
    assert again.status_code == 200 and again.json() == polled and not callbacks


def test_a_failed_file_answers_409_with_the_reason_and_is_made_again_when_asked(
    api, snapshot, django_capture_on_commit_callbacks
):
    file_id = ask(api("admin"), snapshot, {"format": "openai"}, django_capture_on_commit_callbacks)[0].json()["id"]
    SnapshotFile.objects.filter(pk=file_id).update(status="failed", error="MemoryError: out of memory")
    failed = api("annotator").get(f"/api/v1/snapshot-files/{file_id}/download/")
    assert failed.status_code == 409 and failed.json()["status"] == "failed"
    assert failed.json()["detail"] == "The file failed: MemoryError: out of memory"
    again, callbacks = ask(api("admin"), snapshot, {"format": "openai"}, django_capture_on_commit_callbacks)
    assert again.status_code == 202 and again.json()["id"] == file_id and again.json()["status"] == "pending"
    assert again.json()["error"] == "" and len(callbacks) == 1


def test_a_done_file_gone_from_the_disk_is_409_failed(api, snapshot, django_capture_on_commit_callbacks):
    file_id = ask(api("admin"), snapshot, {"format": "sharegpt"}, django_capture_on_commit_callbacks)[0].json()["id"]
    Path(snapshot_file_build(file_id=file_id).file.path).unlink()
    gone = api("annotator").get(f"/api/v1/snapshot-files/{file_id}/download/")
    assert gone.status_code == 409 and gone.json()["status"] == "failed" and "missing" in gone.json()["error"]
    again, callbacks = ask(api("admin"), snapshot, {"format": "sharegpt"}, django_capture_on_commit_callbacks)
    assert again.status_code == 202 and again.json()["status"] == "pending" and len(callbacks) == 1


def test_asking_for_a_done_file_whose_bytes_are_gone_makes_it_again(api, snapshot, django_capture_on_commit_callbacks):
    file_id = ask(api("admin"), snapshot, {"format": "openai"}, django_capture_on_commit_callbacks)[0].json()["id"]
    Path(snapshot_file_build(file_id=file_id).file.path).unlink()
    again, callbacks = ask(api("admin"), snapshot, {"format": "openai"}, django_capture_on_commit_callbacks)
    assert again.status_code == 202 and again.json()["id"] == file_id and again.json()["status"] == "pending"
    assert len(callbacks) == 1


def test_the_task_run_eagerly_through_the_api(api, snapshot, eager, django_capture_on_commit_callbacks):
    asked, _ = ask(api("admin"), snapshot, {"format": "sharegpt"}, django_capture_on_commit_callbacks, execute=True)
    assert asked.status_code == 202  # answered before the task ran
    file = SnapshotFile.objects.get(pk=asked.json()["id"])
    assert file.status == "done" and file.rows == 3
    assert api("annotator").get(f"/api/v1/snapshot-files/{file.pk}/download/").status_code == 200


def test_only_admins_ask_and_outsiders_see_nothing(api, people, snapshot, django_capture_on_commit_callbacks):
    for role in ("annotator", "reviewer"):
        refused, callbacks = ask(api(role), snapshot, {"format": "trl"}, django_capture_on_commit_callbacks)
        assert refused.status_code == 403 and "needs the admin role" in refused.json()["detail"] and not callbacks
    outsider = client_for(people["outsider"])
    assert ask(outsider, snapshot, {"format": "trl"}, django_capture_on_commit_callbacks)[0].status_code == 404
    assert not SnapshotFile.objects.exists()

    file_id = ask(api("admin"), snapshot, {"format": "trl"}, django_capture_on_commit_callbacks)[0].json()["id"]
    snapshot_file_build(file_id=file_id)
    for path in (
        f"/api/v1/snapshots/{snapshot.pk}/files/",
        f"/api/v1/snapshot-files/{file_id}/",
        f"/api/v1/snapshot-files/{file_id}/download/",
    ):
        assert outsider.get(path).status_code == 404, path
        assert api("annotator").get(path).status_code == 200, path
    # a superuser sees every project's files
    outsider_admin = people["outsider"]
    outsider_admin.is_superuser = True
    outsider_admin.save()
    assert client_for(outsider_admin).get(f"/api/v1/snapshot-files/{file_id}/").status_code == 200


def test_other_projects_files_are_404(api, people):
    elsewhere = ProjectFactory(name="elsewhere")
    hidden = DatasetSnapshot.objects.create(project=elsewhere, name="theirs", content_hash="y" * 64)
    file = SnapshotFile.objects.create(snapshot=hidden, format="openai")
    client = api("admin")
    assert client.get(f"/api/v1/snapshot-files/{file.pk}/").status_code == 404
    assert client.get(f"/api/v1/snapshot-files/{file.pk}/download/").status_code == 404
    assert client.post(f"/api/v1/snapshots/{hidden.pk}/files/", {"format": "openai"}, format="json").status_code == 404


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"format": "csv"}, "format", '"csv" is not a valid choice'),
        ({}, "format", "This field is required"),
        ({"format": "trl", "span": "all"}, "span", '"all" is not a valid choice'),
    ],
)
def test_a_bad_request_is_400_and_makes_nothing(
    api, snapshot, django_capture_on_commit_callbacks, body, field, message
):
    response, callbacks = ask(api("admin"), snapshot, body, django_capture_on_commit_callbacks)
    assert response.status_code == 400 and message in " ".join(response.json()[field]), response.json()
    assert not callbacks and not SnapshotFile.objects.exists()


def test_a_trl_file_needs_a_checkpoint(api, project, make_pair, media, django_capture_on_commit_callbacks):
    bare = DatasetSnapshot.objects.create(project=project, name="no checkpoint", content_hash="x" * 64)
    bare.items.create(ordinal=0, query=QueryFactory(project=project), chosen="a", rejected="b", status="approved")
    response, callbacks = ask(api("admin"), bare, {"format": "trl"}, django_capture_on_commit_callbacks)
    assert response.status_code == 400 and "has no checkpoint" in response.json()["format"][0] and not callbacks
    assert ask(api("admin"), bare, {"format": "openai"}, django_capture_on_commit_callbacks)[0].status_code == 202
