"""A task sent through the configured broker (Redis in CI, the filesystem one by default) and run by a
real worker process, against the same database the test uses."""

import json

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from apps.catalog.models import ImportJob, Query
from itool_web.celery import app as celery_app
from tests.factories import ProjectFactory
from workers.tasks import catalog_import_job_run

from ..apps.catalog.test_importers import openai_record


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_import_task_runs_in_a_worker_process(workers):
    worker = workers.start("cpu")
    project = ProjectFactory(name="via-worker")
    body = "".join(json.dumps(openai_record([], qid=f"w{i}")) + "\n" for i in range(3))
    job = ImportJob.objects.create(project=project, format="openai", original_name="w.jsonl")
    job.file.save("w.jsonl", ContentFile(body.encode()))

    result = catalog_import_job_run.delay(job.pk)
    outcome = result.get(timeout=90)  # the worker answers through the result backend

    assert outcome["status"] == "done", outcome
    assert outcome["counts"]["created"] == 3
    job.refresh_from_db()
    assert job.status == "done" and job.progress_done == job.progress_total > 0
    assert Query.objects.filter(project=project).count() == 3
    assert worker.poll() is None, "the worker exited"
    # the task really ran in the worker process: its log says so
    assert f"Task catalog.import_job_run[{result.id}] succeeded" in worker.log_path.read_text()


def test_task_options_suit_long_idempotent_work():
    for name, queue, hours in (
        ("catalog.import_job_run", "cpu", 1),
        ("search.trees_search", "gpu", 12),
        ("training.round_select", "gpu", 1),
        ("curation.round_pair", "cpu", 1),
    ):
        task = celery_app.tasks[name]
        assert task.acks_late is True and task.time_limit >= hours * 3600, name
        assert celery_app.amqp.router.route({}, name)["queue"].name == queue, name
    assert settings.CELERY_TASK_SERIALIZER == "json" and settings.CELERY_ACCEPT_CONTENT == ["json"]
