"""The catalog over REST: tools and queries with filters, one query added, and a file uploaded to the importer
(the same Celery task as the admin's upload, run eagerly here)."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.catalog.models import ImportJob, Query, Tool
from tests.apps.catalog.test_importers import openai_record, toolace_record
from tests.factories import ProjectFactory, QueryFactory, ToolFactory

from .conftest import client_for


def jsonl(name: str, records) -> SimpleUploadedFile:
    body = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
    return SimpleUploadedFile(name, body, content_type="application/jsonl")


def test_tools_and_queries_are_listed_with_filters(api, people, project):
    calc = ToolFactory(project=project, name="calc", schema_hash="hash-calc")
    weather = ToolFactory(project=project)
    easy = QueryFactory(
        project=project, tools=[weather, calc], split="train", kind="multiple", difficulty_bucket="easy"
    )
    hard = QueryFactory(project=project, tools=[weather], split="eval", kind="parallel", difficulty_bucket="hard")
    elsewhere = ProjectFactory(name="elsewhere")
    ToolFactory(project=elsewhere, name="secret", schema_hash="s")
    client = api("annotator")

    tools = client.get("/api/v1/tools/").json()["results"]
    assert sorted(t["name"] for t in tools) == ["calc", "get_weather"]
    assert client.get("/api/v1/tools/", {"name": "calc"}).json()["results"][0]["parameters"]["type"] == "object"

    def ids(**params):
        return [q["id"] for q in client.get("/api/v1/queries/", params).json()["results"]]

    assert ids() == [easy.pk, hard.pk]
    assert ids(split="eval") == ids(kind="parallel") == ids(difficulty="hard") == [hard.pk]
    assert ids(project=project.pk, split="train") == [easy.pk]
    body = client.get(f"/api/v1/queries/{easy.pk}/").json()
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "calc"]  # prompt order
    assert body["ground_truth"] == [{"get_weather": {"city": ["Paris"]}}]
    assert client.get("/api/v1/queries/", {"difficulty": "impossible"}).status_code == 400


def test_a_query_is_added_as_an_openai_record(api, project):
    client = api("admin")
    record = {
        "project": project.pk,
        "split": "eval",
        **openai_record(
            [{"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Asia/Tokyo"}'}}], qid="tokyo"
        ),
    }
    created = client.post("/api/v1/queries/", record, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["external_id"] == "openai:tokyo" and body["split"] == "eval" and body["kind"] == "single"
    assert body["ground_truth"] == [{"get_time": {"tz": ["Asia/Tokyo"]}}]
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    again = client.post("/api/v1/queries/", record, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    changed = client.post("/api/v1/queries/", {**record, "expected": []}, format="json")
    assert changed.status_code == 400 and "already imported with different content" in changed.json()["id"][0]
    assert Query.objects.count() == 1 and Tool.objects.count() == 1


@pytest.mark.parametrize(
    "change, field",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0]"),
        ({"expected": [{"type": "function", "function": {"name": "get_date", "arguments": {}}}]}, "ground_truth[0]"),
        ({"kind": "weird"}, "kind"),
        ({"split": "test"}, "split"),
    ],
)
def test_a_bad_query_is_400_naming_the_field(api, project, change, field):
    record = {"project": project.pk, **openai_record([]), **change}
    response = api("admin").post("/api/v1/queries/", record, format="json")
    assert response.status_code == 400, response.content
    assert any(key.startswith(field) for key in response.json()), response.json()
    assert not Query.objects.exists()


def test_only_project_admins_add_queries_or_upload(api, people, project):
    record = {"project": project.pk, **openai_record([])}
    assert api("reviewer").post("/api/v1/queries/", record, format="json").status_code == 403
    assert client_for(people["outsider"]).post("/api/v1/queries/", record, format="json").status_code == 404
    upload = {"format": "openai", "file": jsonl("a.jsonl", [openai_record([])])}
    assert (
        api("reviewer").post(f"/api/v1/projects/{project.pk}/imports/", upload, format="multipart").status_code == 403
    )
    assert not Query.objects.exists() and not ImportJob.objects.exists()


def test_upload_runs_the_importer_task_end_to_end(api, project, eager, django_capture_on_commit_callbacks):
    client = api("admin")
    records = [toolace_record(), toolace_record(answer="[get_time(tz='Europe/Paris')]")]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            f"/api/v1/projects/{project.pk}/imports/",
            {"format": "toolace", "split": "eval", "file": jsonl("two.jsonl", records)},
            format="multipart",
        )
    assert response.status_code == 202, response.content
    assert len(callbacks) == 1  # the task is sent once the job row is committed
    job = ImportJob.objects.get()
    assert response.json()["id"] == job.pk and response.json()["original_name"] == "two.jsonl"
    status = client.get(f"/api/v1/imports/{job.pk}/").json()
    assert status["status"] == "done" and status["percent"] == 100, status
    assert status["counts"]["created"] == 2 and status["task_id"] and status["created_by"] == "admin"
    assert Query.objects.filter(project=project, split="eval", source="toolace").count() == 2
    assert [j["id"] for j in client.get("/api/v1/imports/", {"project": project.pk}).json()["results"]] == [job.pk]


def test_a_bad_file_fails_the_job_with_line_and_field(api, project, eager, django_capture_on_commit_callbacks):
    client = api("admin")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/projects/{project.pk}/imports/",
            {"format": "openai", "file": jsonl("bad.jsonl", [openai_record([]), "{nope"])},
            format="multipart",
        )
    job = client.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "failed" and "line 2" in job["error"] and "invalid JSON" in job["error"]
    assert not Query.objects.exists()


@pytest.mark.parametrize(
    "fields, error_field",
    [
        ({"format": "csv"}, "format"),
        ({"format": "openai", "split": "test"}, "split"),
        ({"format": "openai", "file": None}, "file"),
        ({"format": "openai", "answers_file": jsonl("answers.json", [{}])}, "answers_file"),
    ],
)
def test_a_bad_upload_is_400_with_field_errors(api, project, eager, fields, error_field):
    data = {"file": jsonl("a.jsonl", [openai_record([])]), **fields}
    data = {k: v for k, v in data.items() if v is not None}
    response = api("admin").post(f"/api/v1/projects/{project.pk}/imports/", data, format="multipart")
    assert response.status_code == 400 and error_field in response.json(), response.content
    assert not ImportJob.objects.exists()


def test_an_oversized_upload_is_refused_before_storing(api, project, eager, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 2000
    big = jsonl("big.jsonl", [openai_record([], qid=f"q{i}") for i in range(40)])
    assert big.size > 2000
    response = api("admin").post(
        f"/api/v1/projects/{project.pk}/imports/", {"format": "openai", "file": big}, format="multipart"
    )
    assert response.status_code == 413 and "IMPORT_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert not ImportJob.objects.exists() and not (settings.MEDIA_ROOT / "imports").exists()
