"""Pairs over REST: the bulk page's filters, keyset pages in gap order, the review actions at a version, 409 on a
stale version with nothing changed, and the pages' permission rules."""

import threading
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.curation.models import PairAssignment, PreferencePair, ReviewEvent
from tests.factories import ProjectFactory, QueryFactory, ToolFactory, UserFactory

from .conftest import client_for


def walk(client, url: str) -> list[dict]:
    """Every row of a list, following `next` links."""
    rows, pages = [], 0
    while url:
        body = client.get(url).json()
        rows += body["results"]
        url, pages = body["next"], pages + 1
        assert pages < 100
    return rows


# --- list and filters --------------------------------------------------------------------------------------


def test_list_filters_like_the_bulk_page(api, people, project, make_pair, round_):
    calc = ToolFactory(project=project, name="calc", schema_hash="hash-calc")
    paris = make_pair(gap=0.2, round=round_)
    lyon = make_pair(status="approved", gap=0.5, chosen="city='Lyon')]", rejected="city='Nice')]")
    calc_pair = make_pair(gap=0.9, deficiency="wrong_type", query=QueryFactory(project=project, tools=[calc]))
    leased = make_pair(gap=0.4)
    PairAssignment.objects.create(
        pair=leased, user=people["annotator"], leased_until=timezone.now() + timezone.timedelta(minutes=5)
    )
    other_project = ProjectFactory(name="elsewhere")
    hidden = make_pair(gap=0.3, project=other_project)
    client = api("annotator")

    def ids(**params):
        response = client.get("/api/v1/pairs/", params)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [paris.pk, leased.pk, lyon.pk, calc_pair.pk]  # smallest gap first; other projects unseen
    assert hidden.pk not in ids()
    assert ids(status="approved") == [lyon.pk]
    assert ids(round=round_.pk) == [paris.pk]
    assert ids(deficiency="wrong_type") == [calc_pair.pk]
    assert ids(tool="calc") == [calc_pair.pk]
    assert ids(gap_min=0.3, gap_max=0.5) == [leased.pk, lyon.pk]
    assert ids(q="nice") == [lyon.pk]
    assert ids(mine="true") == [leased.pk]
    assert ids(project=project.pk, sort="gap") == [calc_pair.pk, lyon.pk, leased.pk, paris.pk]
    assert ids(sort="newest") == [leased.pk, calc_pair.pk, lyon.pk, paris.pk]
    assert ids(project=other_project.pk) == []
    assert ids(mine="false") == [paris.pk, lyon.pk, calc_pair.pk]
    assert ids(q="  nice ", status="approved", gap_max=0.5) == [lyon.pk]  # the text is trimmed, as on the page


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status": "pending"},
        {"status": "approved", "sort": "gap"},
        {"deficiency": "wrong_type"},
        {"tool": "calc"},
        {"gap_min": "0.25", "gap_max": "0.6"},
        {"gap_min": "0.5"},
        {"q": " NICE "},
        {"mine": "true"},
        {"round": "ROUND", "status": "pending", "sort": "newest"},
        {"q": "lyon", "tool": "get_weather", "gap_max": "1"},
    ],
)
def test_the_list_and_the_bulk_page_select_the_same_pairs(api, people, project, make_pair, round_, params):
    """One selector (apps.curation.selectors.pairs_filtered) behind both: the same parameters give the same rows
    in the same order over REST and on the bulk page."""
    from apps.curation.forms import PairFilterForm
    from apps.curation.selectors import PairFilters, pair_filter_choices, pair_list_for_review

    calc = ToolFactory(project=project, name="calc", schema_hash="hash-calc")
    for k in range(12):
        with_calc = {"query": QueryFactory(project=project, tools=[calc])} if k % 3 == 1 else {}
        pair = make_pair(
            status=["pending", "approved", "rejected"][k % 3],
            gap=round(0.05 + k * 0.08, 2),
            round=round_ if k % 2 else None,
            deficiency="wrong_type" if k % 4 == 0 else "wrong_value",
            chosen="city='Nice')]" if k % 5 == 0 else "city='Paris')]",
            **with_calc,
        )
        if k % 6 == 0:
            PairAssignment.objects.create(
                pair=pair, user=people["annotator"], leased_until=timezone.now() + timezone.timedelta(minutes=5)
            )
    make_pair(gap=0.3, project=ProjectFactory(name="elsewhere"), chosen="city='Nice')]")
    params = {name: str(round_.pk) if value == "ROUND" else value for name, value in params.items()}

    rest = [
        row["id"]
        for row in walk(
            api("annotator"), "/api/v1/pairs/?" + urlencode({**params, "project": project.pk, "page_size": 5})
        )
    ]
    form = PairFilterForm(params or None, **pair_filter_choices(project=project))
    assert not params or form.is_valid(), form.errors
    filters = form.filters() if params else PairFilters()  # as the bulk view reads its query string
    page = list(
        pair_list_for_review(project=project, filters=filters, user=people["annotator"]).values_list("pk", flat=True)
    )
    assert rest == page and 0 < len(rest) < 12 + (not params)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": "maybe"}, "status"),
        ({"gap_min": "high"}, "gap_min"),
        ({"round": "one"}, "round"),
        ({"project": str(2**70)}, "project"),
        ({"sort": "random"}, "sort"),
        ({"cursor": "forged"}, "cursor"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(api, params, field):
    response = api("annotator").get("/api/v1/pairs/", params)
    assert response.status_code == 400 and field in response.json()


def test_cursor_pages_walk_ties_in_gap_order_both_ways(api, make_pair):
    """Many pairs share a gap: the keyset (gap, id) pages through them with nothing lost or repeated."""
    pairs = [make_pair(gap=[0.1, 0.5, 0.5, 0.5, 0.9][i % 5]) for i in range(23)]
    expected = [p.pk for p in sorted(pairs, key=lambda p: (p.gap, p.pk))]
    client = api("annotator")
    forward = walk(client, "/api/v1/pairs/?page_size=4")
    assert [row["id"] for row in forward] == expected

    first = client.get("/api/v1/pairs/?page_size=4").json()
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    back = client.get(third["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in second["results"]]
    assert [r["id"] for r in client.get(back["previous"]).json()["results"]] == expected[:4]

    by_gap = walk(client, "/api/v1/pairs/?page_size=5&sort=gap")
    assert [row["id"] for row in by_gap] == [p.pk for p in sorted(pairs, key=lambda p: (-p.gap, p.pk))]
    other_order = client.get(first["next"].replace("page_size=4", "page_size=4&sort=gap"))
    assert other_order.status_code == 400 and "another ordering" in other_order.json()["cursor"][0]


def test_a_next_page_starts_its_index_scan_at_the_cursor(api, make_pair):
    """The page after a cursor is bounded by the sort's first field (gap ≥ the cursor's, or ≤ going back, or for
    sort=gap), so an index on gap starts there rather than at the first row: deep pages cost what the first does."""
    for i in range(6):
        make_pair(gap=0.1 * (i + 1))
    client = api("annotator")
    for sort, bound, back in (("uncertainty", '"gap" >= ', '"gap" <= '), ("gap", '"gap" <= ', '"gap" >= ')):
        first = client.get(f"/api/v1/pairs/?page_size=2&sort={sort}").json()
        with CaptureQueriesContext(connection) as forward:
            second = client.get(first["next"]).json()
        with CaptureQueriesContext(connection) as backward:
            client.get(second["previous"])
        page_sql = [q["sql"] for q in forward.captured_queries if "ORDER BY" in q["sql"]]
        assert len(page_sql) == 1 and bound in page_sql[0], page_sql
        assert any(back in q["sql"] for q in backward.captured_queries if "ORDER BY" in q["sql"])


def test_the_list_writes_pairs_as_the_generic_serializer_does(api, people, project, make_pair, round_):
    """PairSerializer writes a row straight off the model: the same values, field for field, as DRF's
    ModelSerializer machinery, for every kind of pair and in another time zone."""
    from rest_framework import serializers

    from apps.api.curation import PairSerializer, PairViewSet
    from tests.factories import SearchTreeFactory, TreeNodeFactory

    tree = SearchTreeFactory(project=project)
    root = TreeNodeFactory(tree=tree)
    made = [
        make_pair(gap=0.1),
        make_pair(status="approved", round=round_, gap=1e-7, chosen_value=0.30000000000000004),
        make_pair(
            status="edited",
            original_chosen="city='Pariss')]",
            chosen="city='Paris\u00e9 \"x\"')]",
            tree=tree,
            node=root,
            chosen_node=TreeNodeFactory(tree=tree, parent=root, ordinal=1),
            rejected_node=TreeNodeFactory(tree=tree, parent=root, ordinal=2),
            gap=3.0,
        ),
        make_pair(status="flagged", flag_note="Köln?\n", deficiency=""),
    ]
    now = timezone.now()
    PreferencePair.objects.filter(pk=made[0].pk).update(
        assignee=people["annotator"], lease_expires_at=now + timezone.timedelta(minutes=5)
    )
    PreferencePair.objects.filter(pk__in=[p.pk for p in made[1:]]).update(
        reviewed_by=people["reviewer"], reviewed_at=now
    )
    view = PairViewSet(action="list")
    listed = list(view.base_queryset().filter(pk__in=[p.pk for p in made]).order_by("pk"))
    plain = list(PreferencePair.objects.filter(pk__in=[p.pk for p in made]))  # no usernames annotated
    assert len(listed) == len(plain) == 4
    for zone in ("UTC", "Asia/Kolkata", "America/St_Johns"):
        with timezone.override(zone):
            for pair in listed + plain:
                fast = PairSerializer(pair).data
                generic = serializers.ModelSerializer.to_representation(PairSerializer(), pair)
                assert fast == generic and list(fast) == PairSerializer.Meta.fields
    rows = {row["id"]: row for row in api("annotator").get("/api/v1/pairs/").json()["results"]}
    assert rows[made[0].pk]["assignee"] == "annotator" and rows[made[0].pk]["lease_expires_at"].endswith("Z")
    assert rows[made[1].pk]["reviewed_by"] == "reviewer" and rows[made[1].pk]["round"] == round_.pk
    assert rows[made[2].pk]["node"] == root.pk and rows[made[2].pk]["gap"] == 3.0


def test_page_size_is_checked(api, make_pair):
    for _ in range(3):
        make_pair()
    client = api("annotator")
    assert len(client.get("/api/v1/pairs/?page_size=2").json()["results"]) == 2
    assert len(client.get("/api/v1/pairs/?page_size=500").json()["results"]) == 3
    for bad in ("501", "0", "-1", "two", "٣"):
        response = client.get(f"/api/v1/pairs/?page_size={bad}")
        assert response.status_code == 400 and "page_size" in response.json(), bad


def test_retrieve_shows_version_and_verdicts(api, make_pair):
    pair = make_pair()
    body = api("annotator").get(f"/api/v1/pairs/{pair.pk}/").json()
    assert body["version"] == 1 and body["status"] == "pending"
    assert body["rejected_verdict"]["deficiency"] == "wrong_value" and body["chosen_verdict"]["valid"] is True


# --- review actions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, body, status",
    [
        ("approve", {}, "approved"),
        ("reject", {"note": "wrong city"}, "rejected"),
        ("flag", {"note": "is Lyon wrong here?"}, "flagged"),
        ("edit", {"chosen": "city='Paris', unit='c')]"}, "edited"),
        ("swap", {}, "pending"),
    ],
)
def test_each_action_answers_the_new_pair(api, people, make_pair, action, body, status):
    pair = make_pair()
    response = api("annotator").post(f"/api/v1/pairs/{pair.pk}/{action}/", {"version": 1, **body}, format="json")
    assert response.status_code == 200, response.content
    got = response.json()
    assert got["status"] == status and got["version"] == 2 and got["reviewed_by"] == "annotator"
    event = ReviewEvent.objects.get(pair=pair)
    assert event.action == action and event.user == people["annotator"]
    if action == "swap":
        assert got["chosen"] == "city='Lyon')]" and got["gap"] == pytest.approx(-0.7)
    if action == "edit":
        assert got["original_chosen"] == "city='Paris')]" and got["chosen_verdict"]["deficiency"] == "unexpected_param"


def test_undo_and_skip(api, people, make_pair):
    pair = make_pair()
    client = api("annotator")
    client.post(f"/api/v1/pairs/{pair.pk}/approve/", {"version": 1}, format="json")
    undone = client.post(f"/api/v1/pairs/{pair.pk}/undo/", {"version": 2}, format="json")
    assert undone.status_code == 200 and undone.json()["status"] == "pending" and undone.json()["version"] == 3
    nothing = client.post(f"/api/v1/pairs/{pair.pk}/undo/", {"version": 3}, format="json")
    assert nothing.status_code == 400 and "nothing to undo" in nothing.json()["non_field_errors"][0]
    skipped = client.post(f"/api/v1/pairs/{pair.pk}/skip/")
    assert skipped.status_code == 200 and skipped.json()["version"] == 3
    assert PairAssignment.objects.get(pair=pair, user=people["annotator"]).decision == "skip"


@pytest.mark.parametrize(
    "action, body, field",
    [
        ("approve", {}, "version"),
        ("approve", {"version": "two"}, "version"),
        ("approve", {"version": 0}, "version"),
        ("approve", {"version": 5}, "version"),  # a version the pair does not have yet
        ("flag", {"version": 1}, "note"),
        ("flag", {"version": 1, "note": "  "}, "note"),
        ("edit", {"version": 1, "chosen": "   "}, "chosen"),
        ("edit", {"version": 1, "chosen": "x" * 20_001}, "chosen"),
    ],
)
def test_a_bad_body_is_400_and_changes_nothing(api, make_pair, action, body, field):
    pair = make_pair()
    response = api("annotator").post(f"/api/v1/pairs/{pair.pk}/{action}/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    pair.refresh_from_db()
    assert pair.version == 1 and pair.status == "pending" and not ReviewEvent.objects.exists()


def test_text_that_is_not_unicode_is_400_not_a_database_error(api, make_pair):
    pair = make_pair()
    client = api("annotator")
    for body in ('{"version": 1, "note": "bad \\ud800 text"}', '{"version": 1, "\\udfff": 1}'):
        response = client.post(f"/api/v1/pairs/{pair.pk}/reject/", body, content_type="application/json")
        assert response.status_code == 400 and "lone surrogate" in response.json()["detail"], response.content
    nul = client.post(f"/api/v1/pairs/{pair.pk}/reject/", {"version": 1, "note": "a\x00b"}, format="json")
    assert nul.status_code == 400 and "note" in nul.json()
    pair.refresh_from_db()
    assert pair.version == 1 and not ReviewEvent.objects.exists()


def test_a_stale_version_is_409_with_the_pair_now_and_nothing_changed(api, make_pair):
    pair = make_pair()
    reviewer, annotator = api("reviewer"), api("annotator")
    assert (
        reviewer.post(f"/api/v1/pairs/{pair.pk}/reject/", {"version": 1, "note": "no"}, format="json").status_code
        == 200
    )
    stale = annotator.post(f"/api/v1/pairs/{pair.pk}/edit/", {"version": 1, "chosen": "city='Rome')]"}, format="json")
    assert stale.status_code == 409
    body = stale.json()
    assert "version 2, not 1" in body["detail"] and body["expected"] == 1
    assert body["current"]["status"] == "rejected" and body["current"]["version"] == 2
    assert [(e["action"], e["user"], e["version"]) for e in body["events"]] == [("reject", "reviewer", 2)]
    pair.refresh_from_db()
    assert (pair.status, pair.version, pair.chosen) == ("rejected", 2, "city='Paris')]")
    assert ReviewEvent.objects.filter(pair=pair).count() == 1


def test_annotators_cannot_overrule_a_decision_reviewers_can(api, make_pair):
    pair = make_pair()
    assert api("reviewer").post(f"/api/v1/pairs/{pair.pk}/approve/", {"version": 1}, format="json").status_code == 200
    refused = api("annotator").post(f"/api/v1/pairs/{pair.pk}/reject/", {"version": 2}, format="json")
    assert refused.status_code == 403 and "reviewer role" in refused.json()["detail"]
    assert api("admin").post(f"/api/v1/pairs/{pair.pk}/reject/", {"version": 2}, format="json").status_code == 200


def test_other_projects_pairs_are_404(api, people, make_pair):
    pair = make_pair()
    outsider = client_for(people["outsider"])
    assert outsider.get(f"/api/v1/pairs/{pair.pk}/").status_code == 404
    assert outsider.post(f"/api/v1/pairs/{pair.pk}/approve/", {"version": 1}, format="json").status_code == 404
    assert outsider.get(f"/api/v1/pairs/{pair.pk}/events/").status_code == 404
    assert outsider.get("/api/v1/pairs/").json()["results"] == []
    assert PreferencePair.objects.get(pk=pair.pk).version == 1


def test_events_are_the_pairs_history_paged(api, make_pair):
    pair = make_pair()
    client = api("annotator")
    version = 1
    for action in ("approve", "undo", "reject", "undo", "approve"):
        version = client.post(f"/api/v1/pairs/{pair.pk}/{action}/", {"version": version}, format="json").json()[
            "version"
        ]
    rows = walk(client, f"/api/v1/pairs/{pair.pk}/events/?page_size=2")
    assert [(e["action"], e["version"]) for e in rows] == [
        ("approve", 2),
        ("undo", 3),
        ("reject", 4),
        ("undo", 5),
        ("approve", 6),
    ]
    assert rows[0]["before"] == {"status": "pending"} and rows[0]["after"] == {"status": "approved"}
    undos = client.get(f"/api/v1/pairs/{pair.pk}/events/?action=undo").json()["results"]
    assert [e["version"] for e in undos] == [3, 5]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_at_one_version_one_wins_one_gets_409(project):
    """Two people approve and reject the same version at the same moment: exactly one lands."""
    from tests.factories import MembershipFactory, PairFactory

    pair = PairFactory(project=project, query=QueryFactory(project=project, tools=[ToolFactory(project=project)]))
    clients = []
    for name in ("first", "second"):
        user = UserFactory(username=name)
        MembershipFactory(project=project, user=user, role="reviewer")
        clients.append(client_for(user))
    barrier, codes = threading.Barrier(2), {}

    def act(client, action):
        try:
            barrier.wait(timeout=10)
            codes[action] = client.post(f"/api/v1/pairs/{pair.pk}/{action}/", {"version": 1}, format="json").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(c, a)) for c, a in zip(clients, ("approve", "reject"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(codes.values()) == [200, 409]
    pair.refresh_from_db()
    winner = next(a for a, code in codes.items() if code == 200)
    assert pair.version == 2 and pair.status == {"approve": "approved", "reject": "rejected"}[winner]
    assert list(ReviewEvent.objects.filter(pair=pair).values_list("action", flat=True)) == [winner]
