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


@shared_task(bind=True, name="training.round_select", acks_late=True, time_limit=12 * HOUR,
             soft_time_limit=12 * HOUR - 60)
def training_round_select(self, round_id: int) -> dict:
    """Score the round's train queries under its policy and select the weak ones."""
    from apps.training.loop import round_select

    return round_select(round_id=round_id, progress=lambda p: self.update_state(state="PROGRESS", meta=p))


@shared_task(bind=True, name="search.trees_search", acks_late=True, time_limit=24 * HOUR,
             soft_time_limit=24 * HOUR - 60)
def search_trees_search(self, round_id: int, tree_ids: list[int]) -> dict:
    """Search one shard of a round's trees; each step is stored as it is made, so a redelivered task
    (its worker died) resumes where the last stored step ended."""
    from apps.training.loop import trees_search

    return trees_search(round_id=round_id, tree_ids=tree_ids,
                        progress=lambda p: self.update_state(state="PROGRESS", meta=p))


@shared_task(bind=True, name="curation.round_pair", acks_late=True, time_limit=6 * HOUR,
             soft_time_limit=6 * HOUR - 60)
def curation_round_pair(self, round_id: int) -> dict:
    """Extract step-level pairs from the round's finished trees."""
    from apps.training.loop import round_pair

    return round_pair(round_id=round_id, progress=lambda p: self.update_state(state="PROGRESS", meta=p))
