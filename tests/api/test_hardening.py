"""The API under hostile input: JSON nested past any use (400, not a RecursionError's 500), and password
guesses that a client cannot reset by writing its own X-Forwarded-For."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from itool_web.validation import MAX_JSON_DEPTH

from .conftest import client_for

TOKEN_URL = "/api/v1/auth/token/"


def nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deeply_nested_json_is_a_400_on_the_open_token_endpoint(people, levels):
    response = APIClient().post(
        TOKEN_URL, '{"username": "annotator", "version": ' + nested(levels) + "}", content_type="application/json"
    )
    assert response.status_code == 400, response.content[:200]
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in response.json()["detail"]


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 100_000])
def test_deeply_nested_json_is_a_400_on_an_authenticated_endpoint(people, make_pair, levels):
    pair = make_pair()
    client = client_for(people["annotator"])
    for body in ('{"version": ' + nested(levels) + "}", nested(levels, "{}"), '{"a": ' * levels + "1" + "}" * levels):
        response = client.post(f"/api/v1/pairs/{pair.pk}/approve/", body, content_type="application/json")
        assert response.status_code == 400 and "nested deeper" in response.json()["detail"], response.content[:200]
    pair.refresh_from_db()
    assert pair.version == 1


def test_json_nested_within_the_bound_is_read(people):
    body = '{"username": "annotator", "password": "pw-for-tests", "extra": ' + nested(MAX_JSON_DEPTH - 1) + "}"
    response = APIClient().post(TOKEN_URL, body, content_type="application/json")
    assert response.status_code == 200 and "token" in response.json()


# --- password guesses: one count per client address, which the client cannot choose --------------------------


def guess(client: APIClient, password: str = "guess", **headers) -> int:
    return client.post(TOKEN_URL, {"username": "annotator", "password": password}, **headers).status_code


def test_a_changing_x_forwarded_for_does_not_reset_the_count(settings, people):
    settings.API_AUTH_THROTTLE_RATE = "3/minute"
    client = APIClient()
    codes = [guess(client, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}") for i in range(6)]
    assert codes == [400, 400, 400, 429, 429, 429]
    # the right password, too, waits: no token for the guesser
    assert guess(client, "pw-for-tests", HTTP_X_FORWARDED_FOR="203.0.113.9") == 429
    assert not Token.objects.exists()


def test_behind_a_proxy_the_address_it_appends_is_counted(settings, people):
    settings.API_AUTH_THROTTLE_RATE = "2/minute"
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = APIClient(REMOTE_ADDR="10.0.0.1")  # the proxy
    # the client writes what it likes first; the proxy appends the address it saw
    codes = [guess(client, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 192.0.2.7") for i in range(3)]
    assert codes == [400, 400, 429]
    assert guess(client, HTTP_X_FORWARDED_FOR="192.0.2.8") == 400  # another client behind the same proxy


def test_a_right_password_does_not_use_up_the_count(settings, people):
    settings.API_AUTH_THROTTLE_RATE = "2/minute"
    client = APIClient()
    assert [guess(client, "pw-for-tests") for _ in range(5)] == [200] * 5
    assert [guess(client) for _ in range(3)] == [400, 400, 429]


def test_the_login_pages_and_the_token_endpoint_share_one_count(settings, people):
    settings.API_AUTH_THROTTLE_RATE = "3/minute"
    client = APIClient()
    assert guess(client) == 400
    assert client.post("/accounts/login/", {"username": "annotator", "password": "guess"}).status_code == 200
    assert client.post("/admin/login/", {"username": "annotator", "password": "guess"}).status_code == 200
    assert guess(client) == 429
    over = client.post("/accounts/login/", {"username": "annotator", "password": "pw-for-tests"})
    assert over.status_code == 429 and 0 < int(over["Retry-After"]) <= 60
