"""Review pages through the Django test client: what each page shows, in a bounded number of queries, and
actions that change pairs, record events, refuse stale versions with 409, and never write on a refusal."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.urls import reverse

from apps.curation import selectors
from apps.curation.models import PairAssignment, PreferencePair, ReviewEvent
from apps.curation.services import pair_approve, pair_edit, pair_flag, pair_reject
from tests.factories import (
    MembershipFactory,
    PairFactory,
    ProjectFactory,
    QueryFactory,
    SearchTreeFactory,
    ToolFactory,
    TrainingRoundFactory,
    TreeNodeFactory,
    UserFactory,
)

ROOT = Path(__file__).resolve().parents[3]
JSON = {"HTTP_ACCEPT": "application/json"}

# Queries per page, whatever the number of pairs, events, tools or nodes. The session and user lookups of
# the auth middleware count as 2; the project with the user's role is 1.
MAX_QUERIES = {"focus": 10, "list": 9, "dashboard": 10, "history": 5, "tree": 6, "project_list": 3, "guidelines": 3}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(project):
    users = {}
    for role in ("annotator", "reviewer", "admin"):
        users[role] = UserFactory(username=role)
        MembershipFactory(project=project, user=users[role], role=role)
    users["second"] = UserFactory(username="second")
    MembershipFactory(project=project, user=users["second"], role="annotator")
    return users


@pytest.fixture
def annotator_client(client, people):
    client.force_login(people["annotator"])
    return client


@pytest.fixture
def pair(project):
    return PairFactory(project=project)


def url(name, *args):
    return reverse(name, args=args)


def action_url(pair, action):
    return url(f"curation:pair_{action}", pair.project_id, pair.pk)


def text_of(response) -> str:
    return response.content.decode()


# --- pages ---------------------------------------------------------------------------------------------


def test_focus_view_shows_everything_a_reviewer_needs(annotator_client, project, people, django_assert_max_num_queries):
    tools = [ToolFactory(project=project, name=f"tool_{i}", schema_hash=f"h{i}") for i in range(6)]
    query = QueryFactory(project=project, tools=[ToolFactory(project=project), *tools])
    round_ = TrainingRoundFactory(project=project, number=3)
    tree = SearchTreeFactory(project=project, query=query, round=round_)
    pair = PairFactory(project=project, query=query, round=round_, tree=tree)
    upcoming = PairFactory(project=project, query=query, round=round_, gap=0.3)  # smaller gap: next in the queue
    for version in range(1, 13):  # a long history must not add queries
        pair_approve(pair_id=pair.pk, version=version, user=people["annotator"]) if version % 2 else pair_reject(
            pair_id=pair.pk, version=version, user=people["annotator"]
        )
    pair.refresh_from_db()
    with django_assert_max_num_queries(MAX_QUERIES["focus"]):
        response = annotator_client.get(url("curation:pair_focus", project.pk, pair.pk))
    page = text_of(response)
    assert response.status_code == 200
    assert "What is the weather in Paris?" in page  # the conversation
    assert page.count('<details class="tool">') == 7 and "tool_5" in page  # collapsible schemas
    assert "&quot;Paris&quot;" in page and 'id="ground-truth"' in page  # the ground truth
    assert '<pre class="prefix" id="prefix">[get_weather(</pre>' in page
    # side by side, the words only in each branch marked, the checker's offending span highlighted
    assert '<span class="changed">Paris</span>' in page
    assert '<span class="offending">&#x27;</span><span class="changed offending">Lyon</span>' in page
    assert "got &#x27;Lyon&#x27;, expected one of [&#x27;Paris&#x27;]" in page  # the verdict's detail
    assert "value 0.900 · visits 3" in page and "value 0.200 · visits 2" in page and "gap <b>0.700</b>" in page
    assert f'href="/projects/{project.pk}/trees/{tree.pk}/?pair={pair.pk}"' in page  # the tree link
    assert f'data-preload-url="/projects/{project.pk}/pairs/{upcoming.pk}/"' in page  # the next pair preloaded
    assert '<dialog id="keys">' in page and "<kbd>a</kbd></td><td>Approve" in page  # keys on `?`
    assert f'action="/projects/{project.pk}/pairs/{pair.pk}/undo/"' in page  # undo my last change
    assert "round 3" in page


def test_focus_view_of_an_edited_pair_shows_the_edit_as_a_diff(annotator_client, project, people, pair):
    pair_edit(pair_id=pair.pk, version=1, user=people["annotator"], chosen="city='Paris, France')]")
    page = text_of(annotator_client.get(url("curation:pair_focus", project.pk, pair.pk)))
    assert 'id="edit-diff"' in page
    assert '<span class="changed">, France</span>' in page


def test_another_projects_pair_is_not_found(annotator_client, project):
    elsewhere = PairFactory(project=ProjectFactory(name="elsewhere"))
    assert annotator_client.get(url("curation:pair_focus", project.pk, elsewhere.pk)).status_code == 404
    assert annotator_client.get(url("curation:pair_focus", elsewhere.project_id, elsewhere.pk)).status_code == 404
    response = annotator_client.post(
        action_url(elsewhere, "approve").replace(f"/projects/{elsewhere.project_id}/", f"/projects/{project.pk}/"),
        {"version": 1},
    )
    assert response.status_code == 404
    elsewhere.refresh_from_db()
    assert elsewhere.status == "pending" and elsewhere.version == 1


def test_bulk_view_filters_and_sorts(annotator_client, project, people, django_assert_max_num_queries):
    round_a, round_b = TrainingRoundFactory(project=project, number=1), TrainingRoundFactory(project=project, number=2)
    other_tool = ToolFactory(project=project, name="get_time", schema_hash="t")
    time_query = QueryFactory(project=project, tools=[other_tool])
    small = PairFactory(project=project, round=round_a, chosen="city='Nice')]", chosen_value=0.3, rejected_value=0.1)
    large = PairFactory(project=project, round=round_b, chosen_value=1.0, rejected_value=-1.0)
    typed = PairFactory(project=project, round=round_a, query=time_query, deficiency="wrong_type", rejected="x=3)]")
    flagged = PairFactory(project=project, round=round_b, status="flagged")
    for i in range(55):  # more than a page
        PairFactory(project=project, chosen_value=0.5 + i / 100, rejected_value=0.0)
    mine = PairFactory(project=project, gap=5.0, chosen_value=5.0, rejected_value=0.0)
    PreferencePair.objects.filter(pk=mine.pk).update(assignee=people["annotator"])
    elsewhere = PairFactory(project=ProjectFactory(name="elsewhere"), chosen="city='Nice')]")

    def page(path=url("curation:pair_list", project.pk), **params):
        with django_assert_max_num_queries(MAX_QUERIES["list"]):
            response = annotator_client.get(path, params)
        assert response.status_code == 200
        return text_of(response)

    def ids_in(text):
        return [int(i) for i in re.findall(r'name="pair" value="(\d+):\d+"', text)]

    def ids(**params):
        return ids_in(page(**params))

    def link(text, rel):
        found = re.search(rf'<a href="([^"]+)" rel="{rel}">', text)
        return url("curation:pair_list", project.pk) + html.unescape(found.group(1)) if found else None

    first = page()
    first_page = ids_in(first)
    assert len(first_page) == 50 and first_page[0] == small.pk  # uncertainty: smallest gap first
    assert '<span id="match-count">60 pairs</span>' in first  # exact: no filter beyond status/round/deficiency
    assert link(first, "prev") is None and link(first, "first") is None
    second = page(link(first, "next"))  # keyset: the page after the last row's (gap, id)
    assert len(ids_in(second)) == 10 and not set(ids_in(second)) & set(first_page)
    assert link(second, "next") is None and ids_in(page(link(second, "prev"))) == first_page
    assert ids_in(page(link(second, "first"))) == first_page
    by_gap = page(sort="gap")
    gaps = [float(g) for g in re.findall(r'<td class="num">(-?[\d.]+)</td>', by_gap)]
    assert ids_in(by_gap)[0] == mine.pk and gaps == sorted(gaps, reverse=True)
    rest = page(link(by_gap, "next"))
    assert "sort=gap" in link(by_gap, "next") and len(ids_in(rest)) == 10  # filters and sort carried along
    assert set(ids_in(by_gap)) | set(ids_in(rest)) == set(first_page) | set(ids_in(second))
    assert '<span id="match-count">1 pair</span>' in page(status="flagged")
    assert '<span id="match-count">60 pairs</span>' in page(gap_min=-10)  # counted (LIMIT-ed): exact under the cap
    assert ids(sort="gap")[0] == mine.pk
    assert ids(status="flagged") == [flagged.pk]
    assert set(ids(round=round_a.pk)) == {small.pk, typed.pk}
    assert ids(deficiency="wrong_type") == [typed.pk]
    assert ids(tool="get_time") == [typed.pk]
    assert ids(gap_min=1.5, gap_max=2.5) == [large.pk]
    assert ids(q="Nice") == [small.pk] and elsewhere.pk not in ids(q="Nice")
    assert ids(mine="on") == [mine.pk]
    response = annotator_client.get(url("curation:pair_list", project.pk), {"gap_min": "lots"})
    assert response.status_code == 200 and "gap_min" in text_of(response)  # reported, ignored


def test_bulk_view_counts_matches_only_up_to_a_limit(
    annotator_client, project, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(selectors, "COUNT_LIMIT", 3)
    for _ in range(5):
        PairFactory(project=project)
    with django_assert_max_num_queries(MAX_QUERIES["list"]):
        page = text_of(annotator_client.get(url("curation:pair_list", project.pk), {"gap_min": 0}))
    assert '<span id="match-count">more than 3 pairs</span>' in page and page.count('name="pair"') == 5
    page = text_of(annotator_client.get(url("curation:pair_list", project.pk), {"status": "pending"}))
    assert '<span id="match-count">5 pairs</span>' in page  # status, round, deficiency: exact from the counts


def test_bulk_view_disables_rows_an_annotator_cannot_change(annotator_client, project):
    flagged = PairFactory(project=project, status="flagged")
    page = text_of(annotator_client.get(url("curation:pair_list", project.pk)))
    assert f'value="{flagged.pk}:1" disabled' in page


def test_dashboard_counts_progress_people_and_rounds(client, project, people, django_assert_max_num_queries):
    round_1 = TrainingRoundFactory(project=project, number=1, state="reviewing")
    TrainingRoundFactory(project=project, number=2, state="draft")
    pairs = [PairFactory(project=project, round=round_1) for _ in range(8)]
    PairFactory(project=project, round=round_1, deficiency="wrong_type")
    for pair in pairs[:3]:
        pair_approve(pair_id=pair.pk, version=1, user=people["annotator"])
    pair_reject(pair_id=pairs[3].pk, version=1, user=people["second"])
    pair_flag(pair_id=pairs[4].pk, version=1, user=people["second"], note="unsure")
    client.force_login(people["reviewer"])
    with django_assert_max_num_queries(MAX_QUERIES["dashboard"]):
        response = client.get(url("projects:dashboard", project.pk))
    page = text_of(response)
    assert "5 of 9 pairs reviewed (56%)" in page
    assert 'aria-valuenow="56"' in page
    assert re.search(r"<td>annotator</td><td class=\"num\">3</td>\s*<td class=\"num\">3</td>", page)
    assert "<td>second</td>" in page
    assert "wrong_type" in page and "wrong_value" in page
    assert "state-reviewing" in page and "state-draft" in page and "5/9" in page
    assert "Adjudicate (1 waiting)" in page  # a reviewer sees the flagged pair waiting


def test_history_lists_every_event(annotator_client, project, people, pair, django_assert_max_num_queries):
    pair_edit(pair_id=pair.pk, version=1, user=people["annotator"], chosen="city='Paris, France')]")
    pair_approve(pair_id=pair.pk, version=2, user=people["reviewer"])
    with django_assert_max_num_queries(MAX_QUERIES["history"]):
        response = annotator_client.get(url("curation:pair_history", project.pk, pair.pk))
    page = text_of(response)
    assert page.count("<tr><td>") == 2
    assert "<b>edit</b>" in page and "<b>approve</b>" in page and "reviewer" in page
    assert "<del>city=&#x27;Paris&#x27;)]</del> → <ins>city=&#x27;Paris, France&#x27;)]</ins>" in page


def test_tree_view_nests_colours_and_marks_the_pairs_branches(annotator_client, project, django_assert_max_num_queries):
    tree = SearchTreeFactory(project=project)
    root = TreeNodeFactory(tree=tree, fragment="[get_weather(", visits=4, value_sum=2.0)
    chosen = TreeNodeFactory(tree=tree, parent=root, fragment="city='Paris')]", visits=2, value_sum=2.0)
    rejected = TreeNodeFactory(
        tree=tree,
        parent=root,
        fragment="city='Lyon')]",
        visits=2,
        value_sum=-2.0,
        ordinal=1,
        is_terminal=True,
        verdict={"valid": False, "deficiency": "wrong_value"},
    )
    for i in range(20):
        TreeNodeFactory(tree=tree, parent=chosen, fragment=f"more {i}", ordinal=i)
    pair = PairFactory(
        project=project, query=tree.query, tree=tree, node=root, chosen_node=chosen, rejected_node=rejected
    )
    with django_assert_max_num_queries(MAX_QUERIES["tree"]):
        response = annotator_client.get(url("search:tree", project.pk, tree.pk), {"pair": pair.pk})
    page = text_of(response)
    assert page.count("<details") == 2 and page.count("</details>") == 2  # root and chosen have children
    assert page.count('class="leaf"') == 21
    assert 'class="node mark mark-chosen"' in page and 'class="node mark mark-rejected"' in page
    assert "mark-parent" in page and "leaf: wrong_value" in page
    assert "background: hsl(120, 70%, 80%)" in page and "background: hsl(0, 70%, 80%)" in page  # +1 green, −1 red


def test_project_list_shows_only_my_projects(client, project, people, django_assert_max_num_queries):
    ProjectFactory(name="secret-project")
    PairFactory(project=project)
    client.force_login(people["annotator"])
    with django_assert_max_num_queries(MAX_QUERIES["project_list"]):
        page = text_of(client.get(url("projects:list")))
    assert "test-project" in page and "secret-project" not in page


def test_login_and_logout(client, people):
    response = client.get("/")
    assert response.status_code == 302 and response.url == "/accounts/login/?next=/"
    assert "Log in" in text_of(client.get("/accounts/login/"))
    response = client.post("/accounts/login/", {"username": "annotator", "password": "pw-for-tests"})
    assert response.status_code == 302 and response.url == "/projects/"
    assert client.get("/").url == "/projects/"
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/projects/").status_code == 302


# --- actions ---------------------------------------------------------------------------------------------


def test_approve_through_the_view_leases_and_returns_the_next_pair(annotator_client, project, people, pair):
    upcoming = PairFactory(project=project, gap=0.8)
    response = annotator_client.post(action_url(pair, "approve"), {"version": 1}, **JSON)
    assert response.status_code == 200
    body = response.json()
    assert body["pair"] == {**body["pair"], "status": "approved", "version": 2}
    assert body["next_url"] == f"/projects/{project.pk}/pairs/{upcoming.pk}/" and body["stay"] is False
    upcoming.refresh_from_db()
    assert upcoming.assignee == people["annotator"]  # the next pair is leased to whoever goes on
    event = ReviewEvent.objects.get(pair=pair)
    assert (event.action, event.user, event.before, event.after) == (
        "approve",
        people["annotator"],
        {"status": "pending"},
        {"status": "approved"},
    )


def test_plain_form_posts_redirect_to_the_next_pair(annotator_client, project, pair):
    response = annotator_client.post(action_url(pair, "reject"), {"version": 1})
    assert response.status_code == 302 and response.url == f"/projects/{project.pk}/pairs/next/"
    pair.refresh_from_db()
    assert pair.status == "rejected"
    page = text_of(annotator_client.get(response.url))
    assert "Nothing left to review" in page


def test_edit_swap_flag_skip_and_undo_through_the_views(annotator_client, project, people, pair):
    response = annotator_client.post(action_url(pair, "swap"), {"version": 1}, **JSON)
    assert response.json()["stay"] is True and response.json()["next_url"].endswith(f"/pairs/{pair.pk}/")
    pair.refresh_from_db()
    assert (pair.chosen, pair.rejected, pair.version) == ("city='Lyon')]", "city='Paris')]", 2)

    response = annotator_client.post(action_url(pair, "undo"), {"version": 2}, **JSON)
    assert response.status_code == 200
    pair.refresh_from_db()
    assert (pair.chosen, pair.version) == ("city='Paris')]", 3)

    response = annotator_client.post(action_url(pair, "edit"), {"version": 3, "chosen": "city='paris')]"}, **JSON)
    assert response.status_code == 200
    pair.refresh_from_db()
    assert pair.status == "edited" and pair.chosen_verdict["valid"] is True  # re-scored by the checker
    assert pair.original_chosen == "city='Paris')]"

    other = PairFactory(project=project)
    response = annotator_client.post(action_url(other, "flag"), {"version": 1, "note": " "}, **JSON)
    assert response.status_code == 400 and "needs a note" in response.json()["error"]
    response = annotator_client.post(action_url(other, "flag"), {"version": 1, "note": "both wrong"}, **JSON)
    other.refresh_from_db()
    assert (other.status, other.flag_note) == ("flagged", "both wrong")

    skipped = PairFactory(project=project)
    response = annotator_client.post(action_url(skipped, "skip"), **JSON)
    assert response.status_code == 200
    assert PairAssignment.objects.get(pair=skipped, user=people["annotator"]).decision == "skip"
    assert list(ReviewEvent.objects.filter(user=people["annotator"]).values_list("action", flat=True)) == [
        "swap",
        "undo",
        "edit",
        "flag",
        "skip",
    ]


def test_bad_input_is_refused_with_400_and_nothing_changes(annotator_client, pair):
    for data in ({}, {"version": "two"}, {"version": "-1"}):
        response = annotator_client.post(action_url(pair, "approve"), data)
        assert response.status_code == 400 and "version" in text_of(response)
    response = annotator_client.post(action_url(pair, "edit"), {"version": 1, "chosen": "   "}, **JSON)
    assert response.status_code == 400 and "cannot be empty" in response.json()["error"]
    response = annotator_client.post(action_url(pair, "edit"), {"version": 1, "chosen": "x" * 20_001}, **JSON)
    assert response.status_code == 400
    assert annotator_client.get(action_url(pair, "approve")).status_code == 405
    pair.refresh_from_db()
    assert pair.version == 1 and not ReviewEvent.objects.exists()


def test_undo_of_nothing_is_a_400(annotator_client, pair):
    response = annotator_client.post(action_url(pair, "undo"), {"version": 1}, **JSON)
    assert response.status_code == 400 and "nothing to undo" in response.json()["error"]


def test_a_stale_write_gets_409_with_the_other_change_and_can_be_reapplied(client, project, people, pair):
    pair_edit(pair_id=pair.pk, version=1, user=people["second"], chosen="city='Paris, FR')]")  # someone else, first
    client.force_login(people["reviewer"])
    response = client.post(action_url(pair, "edit"), {"version": 1, "chosen": "city='Paris')]"})
    assert response.status_code == 409
    page = text_of(response)
    assert "changed since you read it" in page and "You read version 1; it is now at version 2" in page
    assert "second" in page and "city=&#x27;Paris, FR&#x27;)]" in page  # who changed what
    assert '<input type="hidden" name="version" value="2">' in page  # re-apply against the current version
    assert "city=&#x27;Paris&#x27;)]</textarea>" in page  # with my edit kept
    pair.refresh_from_db()
    assert pair.chosen == "city='Paris, FR')]" and pair.version == 2  # nothing was lost or overwritten

    response = client.post(action_url(pair, "edit"), {"version": 1, "chosen": "city='Paris')]"}, **JSON)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "stale" and body["expected"] == 1 and body["current"]["version"] == 2
    assert body["events"][0]["user"] == "second" and body["events"][0]["action"] == "edit"
    assert "Re-apply my edit chosen to version 2" in body["conflict_html"]

    response = client.post(action_url(pair, "edit"), {"version": 2, "chosen": "city='Paris')]"})  # re-apply
    assert response.status_code == 302
    pair.refresh_from_db()
    assert pair.chosen == "city='Paris')]" and pair.version == 3


def test_bulk_approve_asks_for_confirmation_then_reports_stale_pairs(annotator_client, project, people):
    first, second, third = (PairFactory(project=project) for _ in range(3))
    selection = {
        "action": "approve",
        "pair": [f"{first.pk}:1", f"{second.pk}:1", f"{third.pk}:1"],
        "back": f"/projects/{project.pk}/pairs/?status=pending",
    }
    response = annotator_client.post(url("curation:pair_bulk", project.pk), selection)
    page = text_of(response)
    assert response.status_code == 200 and "Approve 3 pairs?" in page and 'name="confirm" value="yes"' in page
    assert not ReviewEvent.objects.exists()  # nothing changes before the confirmation

    pair_reject(pair_id=third.pk, version=1, user=people["second"])  # meanwhile
    response = annotator_client.post(url("curation:pair_bulk", project.pk), {**selection, "confirm": "yes"})
    assert response.status_code == 302 and response.url == f"/projects/{project.pk}/pairs/?status=pending"
    statuses = dict(PreferencePair.objects.values_list("pk", "status"))
    assert (statuses[first.pk], statuses[second.pk], statuses[third.pk]) == ("approved", "approved", "rejected")
    page = text_of(annotator_client.get(response.url))
    assert "Approved 2 pair(s)." in page and f"left alone: #{third.pk}" in page

    response = annotator_client.post(
        url("curation:pair_bulk", project.pk),
        {"action": "approve", "pair": [f"{first.pk}:2"], "confirm": "yes"},
        **JSON,
    )
    assert response.json() == {"done": [first.pk], "stale": []}


def test_bulk_refuses_bad_selections(annotator_client, project, pair):
    bulk = url("curation:pair_bulk", project.pk)
    assert annotator_client.post(bulk, {"action": "delete", "pair": [f"{pair.pk}:1"]}).status_code == 400
    assert annotator_client.post(bulk, {"action": "approve"}).status_code == 400
    assert annotator_client.post(bulk, {"action": "approve", "pair": ["1;1"]}).status_code == 400
    response = annotator_client.post(
        bulk, {"action": "approve", "pair": [f"{pair.pk}:1"], "confirm": "yes", "back": "https://evil.example/"}
    )
    assert response.url == f"/projects/{project.pk}/pairs/"  # no open redirect


def test_live_rescore_returns_the_verdict_and_writes_nothing(annotator_client, project, pair):
    score = url("curation:pair_score", project.pk, pair.pk)
    response = annotator_client.post(score, {"chosen": "city='Rome')]"})
    body = response.json()
    assert body["verdict"]["deficiency"] == "wrong_value" and "got 'Rome'" in body["verdict"]["detail"]
    assert '<span class="changed offending">Rome</span>' in body["html"]
    assert annotator_client.post(score, {"chosen": "city='Paris')]"}).json()["verdict"]["valid"] is True
    pair.refresh_from_db()
    assert pair.version == 1 and not ReviewEvent.objects.exists()
    no_truth = PairFactory(project=project, query=QueryFactory(project=project, ground_truth=None))
    response = annotator_client.post(url("curation:pair_score", project.pk, no_truth.pk), {"chosen": "x"})
    assert response.json()["verdict"] is None


def test_next_leases_in_queue_order_and_the_adjudication_queue(client, project, people):
    first = PairFactory(project=project, gap=0.2, chosen_value=0.3, rejected_value=0.1)
    PairFactory(project=project, gap=0.5, chosen_value=0.6, rejected_value=0.1)
    client.force_login(people["annotator"])
    response = client.get(url("curation:pair_next", project.pk))
    assert response.url == f"/projects/{project.pk}/pairs/{first.pk}/"
    first.refresh_from_db()
    assert first.assignee == people["annotator"]

    flagged = PairFactory(project=project, status="flagged", gap=0.9)
    edited = PairFactory(project=project)
    pair_edit(pair_id=edited.pk, version=1, user=people["second"], chosen="city='Paris')]")
    by_reviewer = PairFactory(project=project)
    pair_edit(pair_id=by_reviewer.pk, version=1, user=people["reviewer"], chosen="city='Paris')]")
    client.force_login(people["reviewer"])
    response = client.get(url("curation:pair_next", project.pk), {"queue": "adjudicate"})
    assert response.url == f"/projects/{project.pk}/pairs/{edited.pk}/?queue=adjudicate"  # smaller gap than flagged
    response = client.post(action_url(edited, "approve"), {"version": 2, "queue": "adjudicate"}, **JSON)
    assert response.json()["next_url"] == f"/projects/{project.pk}/pairs/{flagged.pk}/?queue=adjudicate"


def test_annotator_cannot_overrule_a_reviewer(annotator_client, project, people, pair):
    pair_reject(pair_id=pair.pk, version=1, user=people["reviewer"])
    response = annotator_client.post(action_url(pair, "approve"), {"version": 2})
    assert response.status_code == 403 and "reviewer role" in text_of(response)
    page = text_of(annotator_client.get(url("curation:pair_focus", project.pk, pair.pk)))
    assert 'id="cannot-act"' in page and f"/pairs/{pair.pk}/approve/" not in page


# --- guidelines ---------------------------------------------------------------------------------------


def test_guidelines_render_markdown_and_escape_raw_html(client, project, people, django_assert_max_num_queries):
    project.guidelines = (
        "# Rules\n\nPrefer **exact** values.\n\n<script>alert('x')</script>\n\n"
        "[click](javascript:alert(1)) <img src=x onerror=alert(1)>"
    )
    project.save()
    client.force_login(people["annotator"])
    with django_assert_max_num_queries(MAX_QUERIES["guidelines"]):
        page = text_of(client.get(url("projects:guidelines", project.pk)))
    assert "<h1>Rules</h1>" in page and "<strong>exact</strong>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page.replace(
        "'", "&#x27;"
    )
    assert "javascript:" not in page and "<img src=x" not in page
    assert 'name="guidelines"' not in page  # annotators read, admins edit


def test_admin_edits_guidelines_and_a_stale_edit_gets_409(client, project, people):
    client.force_login(people["admin"])
    page = text_of(client.get(url("projects:guidelines", project.pk)))
    read_version = re.search(r'name="read_version" value="([^"]+)"', page).group(1)
    response = client.post(
        url("projects:guidelines", project.pk), {"guidelines": "# One", "read_version": read_version}
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.guidelines == "# One"
    response = client.post(
        url("projects:guidelines", project.pk), {"guidelines": "# Two", "read_version": read_version}
    )
    assert response.status_code == 409
    page = text_of(response)
    assert "Someone changed the guidelines" in page and "<h1>One</h1>" in page and "# Two</textarea>" in page
    project.refresh_from_db()
    assert project.guidelines == "# One"


# --- no CDN ---------------------------------------------------------------------------------------------


def test_pages_load_nothing_from_another_host():
    sources = [*(ROOT / "templates").rglob("*.html"), *(ROOT / "static").rglob("*.*")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not re.search(r"https?://|(src|href)\s*=\s*[\"']?//|@import", text), path


def test_a_stale_write_on_a_pair_now_beyond_my_role_is_a_conflict_not_a_refusal(annotator_client, people, pair):
    pair_flag(pair_id=pair.pk, version=1, user=people["second"], note="both wrong")
    response = annotator_client.post(action_url(pair, "approve"), {"version": 1})
    assert response.status_code == 409 and "both wrong" in text_of(response)  # shows what happened
    assert annotator_client.post(action_url(pair, "approve"), {"version": 2}).status_code == 403  # re-apply: no
    assert annotator_client.post(action_url(pair, "approve"), {"version": 3}).status_code == 400  # no such version
    pair.refresh_from_db()
    assert (pair.status, pair.version) == ("flagged", 2)
