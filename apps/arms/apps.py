"""App config for arms: controlled comparisons of training data from a round's input policy."""

from django.apps import AppConfig


class ArmsConfig(AppConfig):
    name = "apps.arms"
    label = "arms"
    default_auto_field = "django.db.models.BigAutoField"
