"""iTool Web: step-level preference data for tool-using LLMs, and the loop that trains on it."""

from .celery import app as celery_app

__all__ = ("celery_app",)
