"""Fixtures of the REST API tests: members of each role with their tokens, and an API client per person."""

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import CheckpointFactory, MembershipFactory, TrainingRoundFactory, UserFactory

ROLES = ("annotator", "reviewer", "admin")


@pytest.fixture(autouse=True)
def fresh_throttles(settings):
    """Throttle counters live in the cache: every test starts with none; passwords hash fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def people(project):
    """annotator, reviewer and admin members of `project`, and an outsider who is a member of nothing."""
    out = {}
    for role in ROLES:
        out[role] = UserFactory(username=role)
        MembershipFactory(project=project, user=out[role], role=role)
    out["outsider"] = UserFactory(username="outsider")
    return out


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(people):
    """api("admin") → an APIClient sending that person's token."""
    return lambda who: client_for(people[who])


@pytest.fixture
def policy(project):
    return CheckpointFactory(project=project, name="policy")


@pytest.fixture
def round_(project, policy):
    return TrainingRoundFactory(project=project, number=1, state="reviewing", policy_in=policy)
