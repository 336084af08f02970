"""A task sent through the configured broker (Redis in CI, the filesystem one by default) and run by a
real worker process, against the same database the test uses."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection

from apps.catalog.models import ImportJob, Query
from itool_web.celery import app as celery_app
from tests.factories import ProjectFactory
from workers.tasks import catalog_import_job_run

from ..apps.catalog.test_importers import openai_record

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A URL for the test database, which the worker process must use too."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    celery_app.control.purge()  # nothing left over from an earlier run may reach this worker
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "CELERY_TASK_ALWAYS_EAGER": "0"}
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "itool_web", "worker", "-Q", "cpu", "--pool", "solo",
         "--concurrency", "1", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_import_task_runs_in_a_worker_process(worker, tmp_path):
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
    log = (tmp_path / "worker.log").read_text()
    assert f"Task catalog.import_job_run[{result.id}] succeeded" in log


def test_task_options_suit_long_idempotent_work():
    task = celery_app.tasks["catalog.import_job_run"]
    assert task.acks_late is True
    assert task.time_limit >= 3600
    assert celery_app.amqp.router.route({}, "catalog.import_job_run")["queue"].name == "cpu"
    assert settings.CELERY_TASK_SERIALIZER == "json" and settings.CELERY_ACCEPT_CONTENT == ["json"]
