"""Odd input to the review pages: numbers in other scripts or beyond any column's range, and NUL characters,
get 400 or 404 (or are ignored where a default applies), never a 500 and never a write; the pages refuse what
the REST API refuses."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.curation.models import PreferencePair, ReviewEvent
from itool_web.validation import MAX_ID, MAX_VERSION
from tests.factories import MembershipFactory, PairFactory, SearchTreeFactory, TrainingRoundFactory, UserFactory

JSON = {"HTTP_ACCEPT": "application/json"}
# Digits str.isdigit() accepts but int() refuses; numbers past every column; no number at all.
BAD_NUMBERS = ["²", "1²", "9" * 5000, str(10**30), str(MAX_ID + 1), "0", "-1", "", "1e3", "0x10"]
# Also refused where only ASCII digits are read (ids in URLs, a queue's round, a bulk selection). A version
# field reads what DRF's and Django's IntegerField read (" 1", "1.0", "+1", "١" are 1): the page as the API.
ODD_NUMBERS = [*BAD_NUMBERS, "١٢", " 1", "1 ", "1\n", "+1", "1.0"]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def annotator(project):
    user = UserFactory(username="annotator")
    MembershipFactory(project=project, user=user, role="annotator")
    return user


@pytest.fixture
def annotator_client(client, annotator):
    client.force_login(annotator)
    return client


@pytest.fixture
def pair(project):
    return PairFactory(project=project)


def action_url(pair, action):
    return reverse(f"curation:pair_{action}", args=[pair.project_id, pair.pk])


def assert_unchanged(pair):
    fresh = PreferencePair.objects.get(pk=pair.pk)
    assert (fresh.status, fresh.version, fresh.chosen, fresh.flag_note) == (
        pair.status,
        pair.version,
        pair.chosen,
        pair.flag_note,
    )
    assert not ReviewEvent.objects.filter(pair=pair).exists()


@pytest.mark.parametrize("value", ODD_NUMBERS)
def test_an_odd_round_in_the_queue_is_ignored(annotator_client, project, pair, value):
    TrainingRoundFactory(project=project, number=1)
    for name, args in (("curation:pair_next", [project.pk]), ("curation:pair_focus", [project.pk, pair.pk])):
        response = annotator_client.get(reverse(name, args=args), {"round": value})
        assert response.status_code in (200, 302), (name, value, response.status_code)
        if response.status_code == 302:
            assert "round=" not in response.url  # an unreadable round is the default queue, not carried on


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_an_odd_version_is_a_400_and_changes_nothing(annotator_client, pair, value):
    for headers in ({}, JSON):
        response = annotator_client.post(action_url(pair, "approve"), {"version": value}, **headers)
        assert response.status_code == 400, (value, response.status_code)
        assert "version" in response.content.decode()
    assert_unchanged(pair)


@pytest.mark.parametrize("pair_id", [str(10**30), str(MAX_ID + 1), "9" * 5000])
def test_a_pair_id_past_the_column_is_a_404(annotator_client, project, pair_id):
    base = f"/projects/{project.pk}/pairs/{pair_id}"
    assert annotator_client.get(f"{base}/").status_code == 404
    assert annotator_client.get(f"{base}/history/").status_code == 404
    assert annotator_client.post(f"{base}/approve/", {"version": 1}).status_code == 404
    assert annotator_client.post(f"{base}/score/", {"chosen": "x"}).status_code == 404


@pytest.mark.parametrize("project_id", [str(10**30), str(MAX_ID + 1)])
def test_a_project_id_past_the_column_is_a_404(annotator_client, project_id):
    for path in ("", "guidelines/", "pairs/", "pairs/next/"):
        assert annotator_client.get(f"/projects/{project_id}/{path}").status_code == 404, path


def test_odd_numbers_in_a_bulk_selection_are_a_400(annotator_client, project, pair):
    bulk = reverse("curation:pair_bulk", args=[project.pk])
    for value in ODD_NUMBERS:
        for selection in (f"{value}:1", f"{pair.pk}:{value}"):
            response = annotator_client.post(bulk, {"action": "approve", "pair": [selection], "confirm": "yes"})
            assert response.status_code == 400, (selection[:40], response.status_code)
    assert_unchanged(pair)


@pytest.mark.parametrize("cursor", [f"0.5~{10**30}", f"0.5~{'9' * 5000}", "0.5~²", "1e999~1", "nan~1"])
def test_an_odd_page_cursor_is_ignored(annotator_client, project, pair, cursor):
    for name in ("after", "before"):
        response = annotator_client.get(reverse("curation:pair_list", args=[project.pk]), {name: cursor})
        assert response.status_code == 200, (name, cursor[:40], response.status_code)


# --- NUL characters: the REST API refuses them with 400; so do the pages -----------------------------


NUL_INPUTS = [
    ("flag", {"note": "both\x00wrong"}),
    ("reject", {"note": "no\x00"}),
    ("edit", {"chosen": "city='Paris\x00')]"}),
]


@pytest.mark.parametrize("action,data", NUL_INPUTS)
def test_a_nul_character_in_a_page_form_is_a_400_and_nothing_is_stored(annotator_client, pair, action, data):
    response = annotator_client.post(action_url(pair, action), {"version": 1, **data}, **JSON)
    assert response.status_code == 400 and "Null characters are not allowed" in response.json()["error"]
    response = annotator_client.post(action_url(pair, action), {"version": 1, **data})  # a plain form post
    assert response.status_code == 400 and "Null characters are not allowed" in response.content.decode()
    assert_unchanged(pair)


def test_a_nul_character_in_a_live_rescore_is_a_400(annotator_client, project, pair):
    response = annotator_client.post(
        reverse("curation:pair_score", args=[project.pk, pair.pk]), {"chosen": "city='Paris\x00')]"}, **JSON
    )
    assert response.status_code == 400


# --- one set of rules: every input the page refuses, the API refuses too, and the other way round ----------


AGREEMENT_CASES = [
    ("approve", {"version": 0}),
    ("approve", {"version": MAX_VERSION + 1}),
    ("approve", {"version": 10**30}),
    ("approve", {"version": "²"}),
    ("approve", {"version": "9" * 5000}),
    ("approve", {"version": 2}),
    ("approve", {"version": 1}),
    *[(action, {"version": 1, **data}) for action, data in NUL_INPUTS],
    ("flag", {"version": 1, "note": "x" * 20_001}),
    ("flag", {"version": 1, "note": "x" * 20_000}),
    ("edit", {"version": 1, "chosen": "   "}),
    ("edit", {"version": 1, "chosen": "city='paris')]"}),
    # what an action does not read is not checked by either
    ("approve", {"version": 1, "note": "x\x00"}),
    ("skip", {"version": "²"}),
    ("swap", {"version": 1, "chosen": "\x00"}),
]


@pytest.mark.parametrize("action,data", AGREEMENT_CASES, ids=lambda v: str(v)[:30])
def test_the_page_and_the_api_agree_on_what_is_valid(client, project, annotator, action, data):
    client.force_login(annotator)
    on_page, via_api = PairFactory(project=project), PairFactory(project=project)
    page = client.post(action_url(on_page, action), data, **JSON).status_code
    api = client.post(
        f"/api/v1/pairs/{via_api.pk}/{action}/", json.dumps(data), content_type="application/json"
    ).status_code
    assert (page == 200) == (api == 200) and (page == 400) == (api == 400), (page, api)
    assert page in (200, 400)


@pytest.mark.parametrize("value", ODD_NUMBERS)
def test_an_odd_pair_on_the_tree_page_is_ignored(annotator_client, project, pair, value):
    tree = SearchTreeFactory(project=project, query=pair.query)
    response = annotator_client.get(reverse("search:tree", args=[project.pk, tree.pk]), {"pair": value})
    assert response.status_code == 200, (value[:40], response.status_code)
