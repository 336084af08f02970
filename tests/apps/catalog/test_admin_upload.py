"""The admin upload form: runs the importer as a Celery task with visible progress; refuses oversized files."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.catalog.models import ImportJob, Query
from tests.factories import UserFactory

from .test_importers import openai_record


@pytest.fixture
def admin_client(client, db):
    user = UserFactory(username="boss", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def upload(name: str, records) -> SimpleUploadedFile:
    body = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
    return SimpleUploadedFile(name, body, content_type="application/jsonl")


def test_upload_runs_import_task_and_shows_progress(admin_client, project, eager, django_capture_on_commit_callbacks):
    records = [openai_record([], qid=f"q{i}") for i in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:catalog_importjob_add"),
            {"project": project.pk, "format": "openai", "split": "eval", "file": upload("four.jsonl", records)},
        )
    assert response.status_code == 302, response.content[:2000]
    job = ImportJob.objects.get()
    assert job.status == "done", job.error
    assert job.original_name == "four.jsonl"
    assert job.counts["created"] == 4 and job.task_id
    assert Query.objects.filter(project=project, split="eval").count() == 4
    page = admin_client.get(reverse("admin:catalog_importjob_change", args=[job.pk])).content.decode()
    assert '<progress value="100" max="100">' in page


def test_bad_upload_fails_the_job_with_the_reason(admin_client, project, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:catalog_importjob_add"),
            {
                "project": project.pk,
                "format": "openai",
                "split": "train",
                "file": upload("bad.jsonl", [openai_record([]), "{nope"]),
            },
        )
    job = ImportJob.objects.get()
    assert job.status == "failed"
    assert "line 2" in job.error and "invalid JSON" in job.error
    assert Query.objects.count() == 0


def test_oversized_upload_is_refused_before_storing(admin_client, project, eager, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 2000
    big = upload("big.jsonl", [openai_record([], qid=f"q{i}") for i in range(40)])
    assert big.size > 2000
    response = admin_client.post(
        reverse("admin:catalog_importjob_add"),
        {"project": project.pk, "format": "openai", "split": "train", "file": big},
        follow=True,
    )
    assert "Upload refused: larger than the limit" in response.content.decode()
    assert ImportJob.objects.count() == 0 and Query.objects.count() == 0
    assert not (settings.MEDIA_ROOT / "imports").exists()


def test_answer_file_only_with_bfcl(admin_client, project, eager):
    response = admin_client.post(
        reverse("admin:catalog_importjob_add"),
        {
            "project": project.pk,
            "format": "openai",
            "split": "train",
            "file": upload("a.jsonl", [openai_record([])]),
            "answers_file": upload("b.json", [{}]),
        },
    )
    assert response.status_code == 200
    assert "An answer file goes with the bfcl format only." in response.content.decode()
    assert ImportJob.objects.count() == 0


@pytest.mark.parametrize("model", ["tool", "query", "importjob"])
def test_catalog_admin_pages_render(admin_client, project, model):
    assert admin_client.get(reverse(f"admin:catalog_{model}_changelist")).status_code == 200
