"""Authentication and throttling: tokens from a password, 401 without a valid one, sessions with CSRF, 429."""

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from .conftest import client_for

TOKEN_URL = "/api/v1/auth/token/"


def test_a_password_gets_a_token_that_authenticates(people, project):
    response = APIClient().post(TOKEN_URL, {"username": "annotator", "password": "pw-for-tests"}, format="json")
    assert response.status_code == 200, response.content
    key = response.json()["token"]
    assert key == Token.objects.get(user=people["annotator"]).key
    # the same token on every request for it
    again = APIClient().post(TOKEN_URL, {"username": "annotator", "password": "pw-for-tests"})
    assert again.json()["token"] == key

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    listed = client.get("/api/v1/projects/")
    assert listed.status_code == 200
    assert [(p["name"], p["role"]) for p in listed.json()["results"]] == [(project.name, "annotator")]


def test_a_wrong_password_gets_no_token(people):
    response = APIClient().post(TOKEN_URL, {"username": "annotator", "password": "guess"}, format="json")
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["non_field_errors"][0]
    assert not Token.objects.exists()


def test_no_token_or_a_wrong_one_is_401(people):
    anonymous = APIClient().get("/api/v1/pairs/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    wrong = client.get("/api/v1/pairs/")
    assert wrong.status_code == 401 and wrong.json()["detail"] == "Invalid token."


def test_a_browser_session_works_and_needs_csrf_to_write(people, project, make_pair):
    pair = make_pair()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people["annotator"])
    assert client.get(f"/api/v1/pairs/{pair.pk}/").status_code == 200
    refused = client.post(f"/api/v1/pairs/{pair.pk}/approve/", {"version": 1}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    client.get("/accounts/login/")  # sets the CSRF cookie, as a page load does
    token = client.cookies["csrftoken"].value
    done = client.post(f"/api/v1/pairs/{pair.pk}/approve/", {"version": 1}, format="json", HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 200 and done.json()["status"] == "approved"


def test_requests_over_the_rate_get_429_with_retry_after(settings, people):
    settings.API_THROTTLE_RATE = "3/minute"
    client, other = client_for(people["annotator"]), client_for(people["reviewer"])
    assert [client.get("/api/v1/projects/").status_code for _ in range(3)] == [200, 200, 200]
    over = client.get("/api/v1/projects/")
    assert over.status_code == 429 and 0 < int(over["Retry-After"]) <= 60
    assert other.get("/api/v1/projects/").status_code == 200  # counted per user (per token)


def test_password_guesses_are_throttled_per_address(settings, people):
    settings.API_AUTH_THROTTLE_RATE = "2/minute"
    client = APIClient()
    codes = [client.post(TOKEN_URL, {"username": "annotator", "password": "guess"}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]
