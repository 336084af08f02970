"""The shape every background job row shares (imports, search trees, eval runs, snapshot files, arm runs): one
status enum and the fields a worker fills in as it takes the job, fails it or finishes it."""

from django.db import models


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(models.Model):
    """A row a worker runs: its status, the error it failed with, the Celery task that runs it, and when it was
    made and finished. The models add what else they track (progress, started_at, who asked)."""

    Status = JobStatus  # `ImportJob.Status.DONE` and the like, as each model spelled it

    status = models.CharField(max_length=8, choices=JobStatus.choices, default=JobStatus.PENDING)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
