"""The permission matrix: anonymous / outsider / annotator / reviewer / admin / superuser × every page and action.

Anonymous people are sent to the login page; members of another project get 404 (the project is invisible,
not hidden); a member whose role is not enough gets 403; a refused write changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.urls import reverse

from apps.curation.models import PreferencePair, ReviewEvent
from apps.curation.services import pair_approve
from apps.projects.models import Membership
from apps.projects.permissions import membership_for, require_role
from apps.training.models import TrainingRound
from tests.factories import (
    MembershipFactory,
    PairFactory,
    ProjectFactory,
    SearchTreeFactory,
    TrainingRoundFactory,
    TreeNodeFactory,
    UserFactory,
)

WHO = ("anonymous", "outsider", "annotator", "reviewer", "admin", "superuser")
LOGIN = "login"  # expected: a redirect to the login page


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Users are made per test: a fast hasher keeps the matrix quick (PBKDF2 costs ~0.3 s per user)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    project: object
    other_project: object
    users: dict
    pending: PreferencePair
    flagged: PreferencePair
    other_pair: PreferencePair
    tree: object
    round: TrainingRound = None

    def url(self, name: str, *args) -> str:
        return reverse(name, args=args)

    def pair_url(self, name: str, pair: PreferencePair) -> str:
        return reverse(name, args=[pair.project_id, pair.pk])


@pytest.fixture
def world(db) -> World:
    project, other_project = ProjectFactory(name="matrix"), ProjectFactory(name="elsewhere")
    users = {}
    for role in ("annotator", "reviewer", "admin"):
        users[role] = UserFactory(username=role)
        MembershipFactory(project=project, user=users[role], role=role)
    users["outsider"] = UserFactory(username="outsider")
    MembershipFactory(project=other_project, user=users["outsider"], role=Membership.Role.ADMIN)
    users["superuser"] = UserFactory(username="root", is_superuser=True, is_staff=True)
    tree = SearchTreeFactory(project=project)
    root = TreeNodeFactory(tree=tree, fragment="[get_weather(")
    chosen = TreeNodeFactory(tree=tree, parent=root, fragment="city='Paris')]", value_sum=0.9)
    rejected = TreeNodeFactory(tree=tree, parent=root, fragment="city='Lyon')]", value_sum=0.2, ordinal=1)
    pending = PairFactory(
        project=project, query=tree.query, tree=tree, node=root, chosen_node=chosen, rejected_node=rejected
    )
    flagged = PairFactory(project=project, query=tree.query, status="flagged", flag_note="both look wrong", gap=0.5)
    other_pair = PairFactory(project=other_project)
    rnd = TrainingRoundFactory(project=project, number=1, state="reviewing")
    return World(project, other_project, users, pending, flagged, other_pair, tree, rnd)


@dataclass
class Case:
    name: str
    method: str
    prepare: Callable[[World, object], tuple[str, dict]]  # (world, user) → (url, data)
    members: object = 200  # expected for annotator, reviewer, admin and superuser unless overridden
    overrides: dict = field(default_factory=dict)
    writes: str | None = None  # the pair ("pending" or "flagged") a refused request must leave untouched

    def expected(self, who: str):
        if who in self.overrides:
            return self.overrides[who]
        if who == "anonymous":
            return LOGIN
        if who == "outsider":
            return 404
        return self.members


def version_of(pair):
    return {"version": pair.version}


def undo_prepare(world: World, user):
    """The user's own last change to undo (anonymous and outsiders have none: use the pending pair)."""
    if user is not None and membership_for(user, world.project) is not None:
        pair_approve(pair_id=world.pending.pk, version=1, user=user)
        return world.pair_url("curation:pair_undo", world.pending), {"version": 2}
    return world.pair_url("curation:pair_undo", world.pending), {"version": 1}


def bulk(pair_attr: str, confirm: bool):
    def prepare(world: World, user):
        pair = getattr(world, pair_attr)
        data = {"action": "approve", "pair": [f"{pair.pk}:{pair.version}"]}
        if confirm:
            data["confirm"] = "yes"
        return world.url("curation:pair_bulk", world.project.pk), data

    return prepare


ANNOTATOR_REFUSED = {"annotator": 403}
ADMIN_ONLY = {"annotator": 403, "reviewer": 403}

CASES = [
    # pages
    Case("home", "get", lambda w, u: ("/", {}), members=302, overrides={"outsider": 302}),
    Case("project list", "get", lambda w, u: (w.url("projects:list"), {}), overrides={"outsider": 200}),
    Case("dashboard", "get", lambda w, u: (w.url("projects:dashboard", w.project.pk), {})),
    Case("bulk view", "get", lambda w, u: (w.url("curation:pair_list", w.project.pk), {})),
    Case(
        "bulk view filtered",
        "get",
        lambda w, u: (w.url("curation:pair_list", w.project.pk), {"status": "pending", "mine": "on", "q": "Paris"}),
    ),
    Case("focus pending", "get", lambda w, u: (w.pair_url("curation:pair_focus", w.pending), {})),
    Case("focus flagged", "get", lambda w, u: (w.pair_url("curation:pair_focus", w.flagged), {})),
    Case("next (lease)", "get", lambda w, u: (w.url("curation:pair_next", w.project.pk), {}), members=302),
    Case(
        "next adjudication",
        "get",
        lambda w, u: (w.url("curation:pair_next", w.project.pk), {"queue": "adjudicate"}),
        members=302,
        overrides=ANNOTATOR_REFUSED,
    ),
    Case("history", "get", lambda w, u: (w.pair_url("curation:pair_history", w.pending), {})),
    Case("tree", "get", lambda w, u: (w.url("search:tree", w.project.pk, w.tree.pk), {"pair": w.pending.pk})),
    Case("guidelines", "get", lambda w, u: (w.url("projects:guidelines", w.project.pk), {})),
    # review actions on a pending pair: every member may
    Case(
        "approve",
        "post",
        lambda w, u: (w.pair_url("curation:pair_approve", w.pending), version_of(w.pending)),
        members=302,
        writes="pending",
    ),
    Case(
        "reject",
        "post",
        lambda w, u: (w.pair_url("curation:pair_reject", w.pending), version_of(w.pending)),
        members=302,
        writes="pending",
    ),
    Case(
        "edit",
        "post",
        lambda w, u: (
            w.pair_url("curation:pair_edit", w.pending),
            {**version_of(w.pending), "chosen": "city='Paris, France')]"},
        ),
        members=302,
        writes="pending",
    ),
    Case(
        "swap",
        "post",
        lambda w, u: (w.pair_url("curation:pair_swap", w.pending), version_of(w.pending)),
        members=302,
        writes="pending",
    ),
    Case(
        "flag",
        "post",
        lambda w, u: (w.pair_url("curation:pair_flag", w.pending), {**version_of(w.pending), "note": "unsure"}),
        members=302,
        writes="pending",
    ),
    Case("skip", "post", lambda w, u: (w.pair_url("curation:pair_skip", w.pending), {}), members=302),
    Case("undo own change", "post", undo_prepare, members=302),
    Case(
        "live re-score",
        "post",
        lambda w, u: (w.pair_url("curation:pair_score", w.pending), {"chosen": "city='Rome')]"}),
    ),
    # adjudication: acting on a flagged pair someone else made needs the reviewer role
    *[
        Case(
            f"{action} flagged",
            "post",
            (
                lambda a: (
                    lambda w, u: (
                        w.pair_url(f"curation:pair_{a}", w.flagged),
                        {**version_of(w.flagged), "chosen": "city='Paris')]", "note": "ok"},
                    )
                )
            )(action),
            members=302,
            overrides=ANNOTATOR_REFUSED,
            writes="flagged",
        )
        for action in ("approve", "reject", "edit", "swap", "flag")
    ],
    # bulk: a confirmation page, then the change
    Case("bulk confirm page", "post", bulk("pending", confirm=False)),
    Case("bulk approve", "post", bulk("pending", confirm=True), members=302, writes="pending"),
    Case(
        "bulk approve flagged",
        "post",
        bulk("flagged", confirm=True),
        members=302,
        overrides=ANNOTATOR_REFUSED,
        writes="flagged",
    ),
    # guidelines: admins edit
    Case(
        "edit guidelines",
        "post",
        lambda w, u: (
            w.url("projects:guidelines", w.project.pk),
            {"guidelines": "# Be strict", "read_version": w.project.updated_at.isoformat()},
        ),
        members=302,
        overrides=ADMIN_ONLY,
    ),
    # rounds: everyone reads; admins create, launch, cancel and resume
    Case("rounds", "get", lambda w, u: (w.url("training:round_list", w.project.pk), {})),
    Case("round", "get", lambda w, u: (w.url("training:round_detail", w.project.pk, 1), {})),
    Case("round progress", "get", lambda w, u: (w.url("training:round_progress", w.project.pk, 1), {})),
    Case(
        "new round",
        "post",
        lambda w, u: (
            w.url("training:round_list", w.project.pk),
            {"algorithm": "dpo", "gate": "all_reviewed", "gate_value": "1"},
        ),
        members=302,
        overrides=ADMIN_ONLY,
    ),
    *[
        Case(
            f"round {action}",
            "post",
            (lambda a: lambda w, u: (w.url(f"training:round_{a}", w.project.pk, 1), {}))(action),
            members=302,
            overrides=ADMIN_ONLY,
        )
        for action in ("launch", "cancel", "resume")
    ],
    Case(
        "other project's round here",
        "get",
        lambda w, u: (
            w.url(
                "training:round_detail", w.project.pk, TrainingRoundFactory(project=w.other_project, number=7).number
            ),
            {},
        ),
        members=404,
    ),
    # another project's pair through this project's URLs: invisible to everyone but superusers
    Case(
        "other project's pair here",
        "get",
        lambda w, u: (reverse("curation:pair_focus", args=[w.project.pk, w.other_pair.pk]), {}),
        members=404,
    ),
    Case(
        "approve other project's pair here",
        "post",
        lambda w, u: (reverse("curation:pair_approve", args=[w.project.pk, w.other_pair.pk]), {"version": 1}),
        members=404,
    ),
    Case(
        "other project's tree here",
        "get",
        lambda w, u: (reverse("search:tree", args=[w.project.pk, SearchTreeFactory(project=w.other_project).pk]), {}),
        members=404,
    ),
    Case(
        "bulk with other project's pair",
        "post",
        lambda w, u: (
            w.url("curation:pair_bulk", w.project.pk),
            {"action": "approve", "pair": [f"{w.other_pair.pk}:1"]},
        ),
        members=404,
    ),
]


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_permission_matrix(client, world, case, who):
    user = world.users.get(who)
    if user is not None:
        client.force_login(user)
    url, data = case.prepare(world, user)
    response = getattr(client, case.method)(url, data)
    expected = case.expected(who)
    if expected == LOGIN:
        assert response.status_code == 302 and response.url.startswith("/accounts/login/?next="), response
    else:
        assert response.status_code == expected, (case.name, who, response.status_code)
    if case.writes and response.status_code in (302, 403, 404) and expected != 302:
        pair = getattr(world, case.writes)
        before = (pair.status, pair.version, pair.chosen)
        pair.refresh_from_db()
        assert (pair.status, pair.version, pair.chosen) == before, "a refused request changed the pair"
        assert not ReviewEvent.objects.filter(pair=pair).exists()
    if case.writes and expected == 302 and who != "anonymous":
        pair = getattr(world, case.writes)
        pair.refresh_from_db()
        assert ReviewEvent.objects.filter(pair=pair, user=user).exists(), "an allowed action left no event"
    if case.name.startswith(("round ", "new round")) and case.method == "post" and expected != 302:
        assert TrainingRound.objects.get(pk=world.round.pk).state == "reviewing", "a refused request changed the round"
        assert TrainingRound.objects.filter(project=world.project).count() == 1


def test_other_projects_are_not_listed(client, world):
    client.force_login(world.users["outsider"])
    page = client.get(reverse("projects:list")).content.decode()
    assert "elsewhere" in page and "matrix" not in page
    client.force_login(world.users["superuser"])
    page = client.get(reverse("projects:list")).content.decode()
    assert "elsewhere" in page and "matrix" in page


def test_require_role(world):
    project, users = world.project, world.users
    assert require_role(users["annotator"], project) == "annotator"
    assert require_role(users["reviewer"], project, "reviewer", "admin") == "reviewer"
    assert require_role(users["superuser"], project, "admin") == "admin"
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    with pytest.raises(PermissionDenied):
        require_role(users["annotator"], project, "reviewer", "admin")
    with pytest.raises(Http404):
        require_role(users["outsider"], project)
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(Http404):
        require_role(AnonymousUser(), project)


def test_annotator_may_change_a_pair_they_reviewed_or_hold(client, world):
    """An annotator may change their own decision and act on a pair leased to them (overlap), not on others'."""
    annotator = world.users["annotator"]
    client.force_login(annotator)
    response = client.post(reverse("curation:pair_approve", args=[world.project.pk, world.pending.pk]), {"version": 1})
    assert response.status_code == 302
    response = client.post(reverse("curation:pair_reject", args=[world.project.pk, world.pending.pk]), {"version": 2})
    assert response.status_code == 302  # their own decision
    pair_approve(pair_id=world.pending.pk, version=3, user=world.users["reviewer"])
    response = client.post(reverse("curation:pair_reject", args=[world.project.pk, world.pending.pk]), {"version": 4})
    assert response.status_code == 403  # the reviewer's decision now
    from datetime import timedelta

    from django.utils import timezone

    from apps.curation.models import PairAssignment

    PairAssignment.objects.update_or_create(
        pair=world.pending,
        user=annotator,
        defaults={"decision": "", "leased_until": timezone.now() + timedelta(minutes=5)},
    )
    response = client.post(reverse("curation:pair_reject", args=[world.project.pk, world.pending.pk]), {"version": 4})
    assert response.status_code == 302  # leased to them (a second annotator with overlap)
