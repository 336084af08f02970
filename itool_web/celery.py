"""The Celery app: configured from Django settings (CELERY_*), two queues, JSON only."""

import os

from celery import Celery
from kombu import Queue

from apps.training.pipeline import task_routes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itool_web.settings")

app = Celery("itool_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
# gpu: search, training, evaluation (long, one per device); cpu: imports, pair extraction, exports.
app.conf.task_queues = (Queue("cpu"), Queue("gpu"))
app.conf.task_default_queue = "cpu"
# A round's stage tasks go where apps.training.pipeline says; the other tasks by their name's prefix.
app.conf.task_routes = {
    **task_routes(),
    "catalog.*": {"queue": "cpu"},
    "curation.*": {"queue": "cpu"},
    "datasets.*": {"queue": "cpu"},
    "training.*": {"queue": "gpu"},  # the arms
}
app.conf.imports = ("workers.tasks",)
