"""App config for rewards (no models: it is registered for its management command)."""

from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "apps.rewards"
    label = "rewards"
