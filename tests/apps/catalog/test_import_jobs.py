"""Import jobs end: failed with the reason on anything that goes wrong, reaped when their worker dies, and a
BFCL file imports however often it is uploaded (its category is read from the name it was uploaded under)."""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from apps.catalog import services
from apps.catalog.models import ImportJob, Query
from apps.catalog.services import import_job_run, import_jobs_reap
from tests.factories import UserFactory

from .test_importers import openai_record

pytestmark = pytest.mark.usefixtures("media")  # the uploads are written under the test's own folder


def make_job(
    project, name: str, body: str | bytes, fmt: str = "openai", answers: tuple[str, str] | None = None, **fields
) -> ImportJob:
    body = body.encode() if isinstance(body, str) else body
    answers_file = SimpleUploadedFile(answers[0], answers[1].encode()) if answers else ""
    return ImportJob.objects.create(
        project=project,
        format=fmt,
        file=SimpleUploadedFile(name, body),
        answers_file=answers_file,
        original_name=name,
        progress_total=len(body),
        **fields,
    )


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# --- a job ends failed with the reason, whatever goes wrong ----------------------------------------------


@pytest.mark.parametrize(
    "name, body, reason",
    [
        (
            "deep.jsonl",
            json.dumps(openai_record([])) + "\n" + '{"messages": ' + deep(100_000) + "}\n",
            "line 2: json: nested too deeply to read",
        ),
        ("deep.json", deep(100_000), "line 1: json: nested too deeply to read"),  # a top-level array
        (
            "nested.jsonl",
            json.dumps(openai_record([]))
            + "\n"
            + json.dumps(
                openai_record([], qid="q2")
                | {
                    "tools": [
                        {
                            "type": "function",
                            "function": {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "properties": {
                                        "x": json.loads(
                                            '{"type": "object", "properties": {"y": ' * 300 + "{}" + "}}" * 300
                                        )
                                    },
                                },
                            },
                        }
                    ]
                }
            )
            + "\n",
            "line 2:",
        ),
        ("arr.json", "[1, 2]", "line 1: record: expected a JSON object, got int"),
        ("bad.bin", b"\xff\xfe\x00garbage", "line 1: json: invalid JSON"),
    ],
)
def test_a_job_fails_with_the_reason_and_writes_nothing(project, name, body, reason):
    job = import_job_run(job_id=make_job(project, name, body).pk)
    assert job.status == "failed" and job.finished_at is not None
    assert reason in job.error
    assert Query.objects.count() == 0


def test_the_bfcl_answer_file_uploaded_as_the_prompt_file_fails_the_job(project, bfcl_data):
    answers = (bfcl_data / "possible_answer" / "BFCL_v4_parallel.json").read_text()
    job = make_job(project, "BFCL_v4_parallel.json", answers, fmt="bfcl", answers=("BFCL_v4_parallel.json", answers))
    job = import_job_run(job_id=job.pk)
    assert job.status == "failed" and "line 1: question: missing" in job.error


def test_an_unexpected_error_fails_the_job_too(project, monkeypatch):
    def broken(**kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(services, "records_write", broken)
    job = import_job_run(job_id=make_job(project, "ok.jsonl", json.dumps(openai_record([])) + "\n").pk)
    assert job.status == "failed"
    assert job.error == "unexpected error: KeyError: 'a bug'"


def test_a_running_job_beats_and_ends_done(project):
    records = "".join(json.dumps(openai_record([], qid=f"q{i}")) + "\n" for i in range(3))
    job = import_job_run(job_id=make_job(project, "three.jsonl", records).pk)
    assert job.status == "done" and job.error == "" and job.counts["created"] == 3
    assert job.heartbeat_at is not None and job.progress_done == job.progress_total


# --- the reaper --------------------------------------------------------------------------------------------


def test_reaper_fails_running_jobs_whose_worker_went_silent(project):
    now = timezone.now()
    body = json.dumps(openai_record([])) + "\n"
    silent = make_job(
        project,
        "a.jsonl",
        body,
        status="running",
        started_at=now - timedelta(hours=3),
        heartbeat_at=now - timedelta(hours=2),
    )
    old_row = make_job(project, "b.jsonl", body, status="running", started_at=now - timedelta(hours=2))
    alive = make_job(
        project,
        "c.jsonl",
        body,
        status="running",
        started_at=now - timedelta(hours=3),
        heartbeat_at=now - timedelta(minutes=1),
    )
    queued = make_job(project, "d.jsonl", body)  # pending: waiting for a worker is not dying
    done = make_job(
        project,
        "e.jsonl",
        body,
        status="done",
        started_at=now - timedelta(hours=3),
        heartbeat_at=now - timedelta(hours=3),
    )
    assert sorted(import_jobs_reap()) == sorted([silent.pk, old_row.pk])
    silent.refresh_from_db()
    assert silent.status == "failed" and "sent no progress since" in silent.error
    assert "upload the file again" in silent.error
    for job, status in ((alive, "running"), (queued, "pending"), (done, "done")):
        job.refresh_from_db()
        assert job.status == status
    assert import_jobs_reap() == []
    assert import_jobs_reap(stalled_after=timedelta(seconds=30)) == [alive.pk]


def test_the_admin_pages_reap(client, project):
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    job = make_job(
        project,
        "a.jsonl",
        "{}\n",
        status="running",
        started_at=timezone.now() - timedelta(hours=2),
        heartbeat_at=timezone.now() - timedelta(hours=2),
    )
    assert client.get(reverse("admin:catalog_importjob_changelist")).status_code == 200
    job.refresh_from_db()
    assert job.status == "failed"


def test_the_rest_import_pages_reap(project):
    from django.core.cache import cache
    from rest_framework.test import APIClient

    from tests.factories import MembershipFactory

    cache.clear()  # throttle counters
    user = UserFactory(username="admin")
    MembershipFactory(project=project, user=user, role="admin")
    client = APIClient()
    client.force_authenticate(user)
    stalled = {
        "status": "running",
        "started_at": timezone.now() - timedelta(hours=2),
        "heartbeat_at": timezone.now() - timedelta(hours=2),
    }
    job = make_job(project, "a.jsonl", "{}\n", **stalled)
    assert client.get(f"/api/v1/imports/{job.pk}/").json()["status"] == "failed"
    other = make_job(project, "b.jsonl", "{}\n", **stalled)
    assert client.get("/api/v1/imports/", {"project": project.pk}).status_code == 200
    other.refresh_from_db()
    assert other.status == "failed"
    cache.clear()


def test_a_reaped_job_can_run_again(project):
    job = make_job(
        project,
        "a.jsonl",
        json.dumps(openai_record([])) + "\n",
        status="running",
        started_at=timezone.now() - timedelta(hours=2),
    )
    import_jobs_reap()
    job = import_job_run(job_id=job.pk)  # the broker redelivers the task of the worker that died
    assert job.status == "done" and job.error == ""


# --- BFCL uploaded twice ----------------------------------------------------------------------------------


def test_a_bfcl_file_uploaded_twice_imports_twice(
    client, project, bfcl_data, eager, django_capture_on_commit_callbacks
):
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    name = "BFCL_v4_parallel.json"
    prompts = "".join((bfcl_data / name).read_text().splitlines(keepends=True)[:3])
    ids = {json.loads(line)["id"] for line in prompts.splitlines()}
    answers = "".join(
        line
        for line in (bfcl_data / "possible_answer" / name).read_text().splitlines(keepends=True)
        if json.loads(line)["id"] in ids
    )
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                reverse("admin:catalog_importjob_add"),
                {
                    "project": project.pk,
                    "format": "bfcl",
                    "split": "eval",
                    "file": SimpleUploadedFile(name, prompts.encode()),
                    "answers_file": SimpleUploadedFile(name, answers.encode()),
                },
            )
        assert response.status_code == 302
    first, second = ImportJob.objects.order_by("pk")
    assert first.file.name != second.file.name  # stored under another name the second time
    assert second.original_name == name
    assert (first.status, second.status) == ("done", "done"), second.error
    assert (first.counts["created"], second.counts["unchanged"]) == (3, 3)
    assert Query.objects.filter(kind="parallel", split="eval").count() == 3
