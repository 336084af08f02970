"""The job rows (imports, search trees, eval runs, snapshot files, arm runs) share one status enum and the fields of
the abstract Job, and the migrations describe the models exactly."""

import io

import pytest
from django.core.management import call_command

from apps.arms.models import ArmRun
from apps.catalog.models import ImportJob
from apps.datasets.models import SnapshotFile
from apps.search.models import SearchTree
from apps.training.models import EvalRun
from itool_web.jobs import Job, JobStatus

JOB_MODELS = [ImportJob, SearchTree, EvalRun, SnapshotFile, ArmRun]


@pytest.mark.parametrize("model", JOB_MODELS, ids=lambda m: m.__name__)
def test_every_job_model_has_the_shared_status_and_fields(model):
    assert issubclass(model, Job) and model.Status is JobStatus
    for name in ("status", "error", "task_id", "created_at", "finished_at"):
        assert model._meta.get_field(name).deconstruct()[1:] == Job._meta.get_field(name).deconstruct()[1:]
    choices = [value for value, _ in model._meta.get_field("status").choices]
    assert model().status == "pending" and choices == ["pending", "running", "done", "failed"]


def test_the_migrations_match_the_models(db):
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits non-zero on a pending change
    assert "No changes detected" in out.getvalue()
