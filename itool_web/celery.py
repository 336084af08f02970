"""The Celery app: configured from Django settings (CELERY_*), two queues, JSON only."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itool_web.settings")

app = Celery("itool_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
# gpu: search, training, evaluation (long, one per device); cpu: imports, pair extraction, exports.
app.conf.task_queues = (Queue("cpu"), Queue("gpu"))
app.conf.task_default_queue = "cpu"
# Tasks are named "<stage>.<action>"; the stage decides the queue.
app.conf.task_routes = {
    "training.round_search_dispatch": {"queue": "cpu"},  # creates trees and sends shards: no model
    "catalog.*": {"queue": "cpu"},
    "curation.*": {"queue": "cpu"},
    "datasets.*": {"queue": "cpu"},
    "search.*": {"queue": "gpu"},
    "training.*": {"queue": "gpu"},
    "evaluation.*": {"queue": "gpu"},
}
app.conf.imports = ("workers.tasks",)
