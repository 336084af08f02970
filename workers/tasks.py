"""Celery entry points. Each takes ids, loads rows through a service, and is safe to run twice."""
from celery import shared_task

HOUR = 3600


@shared_task(name="catalog.import_job_run", acks_late=True, time_limit=6 * HOUR,
             soft_time_limit=6 * HOUR - 60)
def catalog_import_job_run(job_id: int) -> dict:
    """Run an upload's import; the job row carries progress, counts and any error."""
    from apps.catalog.services import import_job_run

    job = import_job_run(job_id=job_id)
    return {"job": job.pk, "status": job.status, "counts": job.counts, "error": job.error}
