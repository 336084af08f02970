"""App config for curation."""

from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "apps.curation"
    label = "curation"
    default_auto_field = "django.db.models.BigAutoField"
