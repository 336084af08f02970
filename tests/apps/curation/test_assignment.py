"""Assignment: leases, overlap, skip, undo, bulk review, and agreement figures."""

import threading

import pytest
from django.db import connection

from apps.curation.agreement import cohen_kappa, percent_agreement, project_agreement
from apps.curation.models import PairAssignment, PreferencePair, ReviewEvent
from apps.curation.services import (
    StaleVersion,
    pair_approve,
    pair_bulk_review,
    pair_edit,
    pair_lease_next,
    pair_reject,
    pair_skip,
    pair_swap,
    pair_undo,
)
from tests.factories import ProjectFactory, UserFactory

from .test_review_services import review_pair


def more_pairs(project, gaps):
    base = review_pair(project)
    out = [base]
    for i, gap in enumerate(gaps):
        out.append(
            PreferencePair.objects.create(
                project=project,
                query=base.query,
                chosen=f"c{i}",
                rejected=f"r{i}",
                gap=gap,
                dedup_key=f"k{i}",
                chosen_verdict={"valid": True},
                rejected_verdict={"valid": False},
            )
        )
    return out


def test_lease_smallest_gap_first_and_kept_until_decided(project):
    base, small, large = more_pairs(project, [0.2, 0.9])  # base gap 0.6
    ann = UserFactory()
    first = pair_lease_next(project=project, user=ann)
    assert first == small and first.assignee == ann and first.lease_expires_at
    assert pair_lease_next(project=project, user=ann) == small  # the held lease comes back
    other = UserFactory()
    assert pair_lease_next(project=project, user=other) == base  # held by someone else: skipped
    pair_approve(pair_id=small.pk, version=1, user=ann)
    assert pair_lease_next(project=project, user=ann) == large
    assert PairAssignment.objects.get(pair=small, user=ann).decision == "approve"


def test_skip_gives_the_pair_back_to_others(project):
    base, small = more_pairs(project, [0.1])
    ann, other = UserFactory(), UserFactory()
    assert pair_lease_next(project=project, user=ann) == small
    pair_skip(pair_id=small.pk, user=ann)
    assert pair_lease_next(project=project, user=ann) == base  # not offered again to who skipped it
    assert pair_lease_next(project=project, user=other) == small
    assert ReviewEvent.objects.filter(action="skip").count() == 1


def test_overlap_serves_k_annotators_and_disagreement_goes_to_a_reviewer(project):
    project.review_overlap = 2
    project.save()
    (pair,) = more_pairs(project, [])
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    assert pair_lease_next(project=project, user=a) == pair
    assert pair_lease_next(project=project, user=b) == pair
    assert pair_lease_next(project=project, user=c) is None  # two hold it already
    pair_approve(pair_id=pair.pk, version=1, user=a)
    pair = pair_reject(pair_id=pair.pk, version=2, user=b)
    assert pair.status == "flagged" and "disagree" in pair.flag_note
    figures = project_agreement(project)
    assert figures["annotators"]["pairs"] == 1 and figures["annotators"]["percent"] == 0.0


@pytest.mark.django_db(transaction=True)
def test_concurrent_leases_never_share_a_slot():
    project = ProjectFactory(name="lease-race")
    more_pairs(project, [0.1, 0.2, 0.3])
    users = [UserFactory(username=f"u{i}") for i in range(4)]
    got, barrier = {}, threading.Barrier(4)

    def lease(user):
        try:
            barrier.wait()
            pair = pair_lease_next(project=project, user=user)
            got[user.username] = pair.pk if pair else None
        finally:
            connection.close()

    threads = [threading.Thread(target=lease, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got.values())) == 4 and None not in got.values()


def test_undo_reverts_the_users_last_change(pair_with_user):
    pair, user = pair_with_user
    pair_edit(pair_id=pair.pk, version=1, user=user, chosen="city='Paris')]")
    undone = pair_undo(pair_id=pair.pk, version=2, user=user)
    assert (undone.status, undone.chosen, undone.version) == ("pending", "city='Lyon')]", 3)
    assert undone.original_chosen == "" and undone.chosen_verdict["deficiency"] == "wrong_value"
    with pytest.raises(ValueError, match="nothing to undo"):
        pair_undo(pair_id=pair.pk, version=3, user=user)
    pair_swap(pair_id=pair.pk, version=3, user=user)
    back = pair_undo(pair_id=pair.pk, version=4, user=user)
    assert (back.chosen, back.rejected, back.chosen_visits, back.gap) == (
        "city='Lyon')]",
        "city=3)]",
        3,
        pytest.approx(0.6),
    )
    pair_approve(pair_id=pair.pk, version=5, user=UserFactory())
    with pytest.raises(ValueError, match="someone else's"):
        pair_undo(pair_id=pair.pk, version=6, user=user)
    with pytest.raises(StaleVersion):
        pair_undo(pair_id=pair.pk, version=5, user=user)


@pytest.fixture
def pair_with_user(project):
    return review_pair(project), UserFactory()


def test_bulk_review_leaves_stale_pairs_alone(project):
    base, other = more_pairs(project, [0.3])
    pair_reject(pair_id=other.pk, version=1, user=UserFactory())
    out = pair_bulk_review(pair_versions={base.pk: 1, other.pk: 1}, user=UserFactory(), action="approve")
    assert out == {"done": [base.pk], "stale": [other.pk]}
    assert PreferencePair.objects.get(pk=other.pk).status == "rejected"
    with pytest.raises(ValueError):
        pair_bulk_review(pair_versions={}, user=None, action="delete")


def test_kappa_and_percent():
    a = ["approve", "approve", "reject", "reject", "approve"]
    b = ["approve", "reject", "reject", "reject", "approve"]
    assert percent_agreement(a, b) == 0.8
    # p_o = 0.8; p_e = 0.6*0.4 + 0.4*0.6 = 0.48 → κ = 0.32 / 0.52
    assert cohen_kappa(a, b) == pytest.approx(0.32 / 0.52)
    assert cohen_kappa(["approve"] * 3, ["approve"] * 3) == 1.0 and cohen_kappa([], []) is None


def test_human_vs_checker(project):
    pairs = more_pairs(project, [0.1, 0.2])  # the extra two: chosen valid, rejected invalid → checker approves
    ann = UserFactory()
    pair_approve(pair_id=pairs[1].pk, version=1, user=ann)
    pair_reject(pair_id=pairs[2].pk, version=1, user=ann)
    checker = project_agreement(project)["checker"]
    assert checker["pairs"] == 2 and checker["percent"] == 0.5
