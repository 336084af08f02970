"""Security headers on every response (a Content-Security-Policy with no inline script, and Django's usual
ones), templates that need no inline script, and a limit on password guesses at both login pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_counts(settings):
    """Throttle counters live in the cache: every test starts with none; passwords hash fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def member(project):
    user = UserFactory(username="annotator")
    MembershipFactory(project=project, user=user, role="annotator")
    return user


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def test_every_kind_of_response_carries_the_security_headers(client, project, member):
    client.force_login(member)
    responses = {
        "page": client.get(reverse("projects:guidelines", args=[project.pk])),
        "login": client.get("/accounts/login/"),
        "admin login": client.get("/admin/login/"),
        "api": client.get("/api/v1/projects/"),
        "404": client.get("/no-such-page/"),
        "api docs": client.get("/api/docs/"),
    }
    for name, response in responses.items():
        assert response.status_code in (200, 404), name
        policy = directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], name  # no 'unsafe-inline', no 'unsafe-eval', no other host
        assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"], name
        assert policy["base-uri"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], name
        assert policy["style-src"] == ["'self'"] and policy["form-action"] == ["'self'"], name
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert response["X-Frame-Options"] == "DENY", name
        assert response["Referrer-Policy"] == "same-origin", name
        assert "camera=()" in response["Permissions-Policy"], name


def test_the_api_docs_start_without_an_inline_script(client, member):
    client.force_login(member)
    page = client.get("/api/docs/").content.decode()
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), page  # every script is a file
    assert not re.search(r"<style", page)
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_templates_have_no_inline_script_event_handler_or_javascript_link():
    """What the Content-Security-Policy would refuse to run: script lives in static/ files."""
    templates = list((ROOT / "templates").rglob("*.html"))
    assert templates
    for path in templates:
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert "javascript:" not in text.lower(), path
        assert "<style" not in text, path


# --- password guesses at the login pages -------------------------------------------------------------------


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_password_guesses_at_a_login_page_are_limited(client, member, login_url):
    """The attack run's 40 wrong passwords: past the rate (30/minute by default) each gets 429 without a
    password check; a changing X-Forwarded-For does not reset the count; the right one then waits too."""
    codes = [
        client.post(
            login_url, {"username": "annotator", "password": f"guess-{i}"}, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}"
        ).status_code
        for i in range(40)
    ]
    assert codes == [200] * 30 + [429] * 10
    right = client.post(login_url, {"username": "annotator", "password": "pw-for-tests"})
    assert right.status_code == 429 and 0 < int(right["Retry-After"]) <= 60
    assert "Too many login attempts" in right.content.decode()
    assert "_auth_user_id" not in client.session


def test_people_logging_in_do_not_use_up_their_address(client, member, settings):
    settings.API_AUTH_THROTTLE_RATE = "3/minute"
    for _ in range(10):
        response = client.post("/accounts/login/", {"username": "annotator", "password": "pw-for-tests"})
        assert response.status_code == 302 and response.url == "/projects/"
        client.post("/accounts/logout/")
    # a logged-in guesser gets no refund for wrong guesses at someone else's password
    client.force_login(member)
    codes = [client.post("/accounts/login/", {"username": "admin", "password": "guess"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_a_page_load_is_not_a_guess(client, settings):
    settings.API_AUTH_THROTTLE_RATE = "1/minute"
    assert [client.get("/accounts/login/").status_code for _ in range(5)] == [200] * 5
