"""Review actions: versioned writes (a stale one changes nothing), an event per change, edits re-scored."""

import threading

import pytest
from django.db import connection

from apps.curation.models import PreferencePair, ReviewEvent
from apps.curation.services import StaleVersion, pair_approve, pair_edit, pair_flag, pair_reject, pair_swap
from tests.factories import PairFactory, ProjectFactory, UserFactory


def review_pair(project) -> PreferencePair:
    """A pending pair whose chosen branch names the wrong city (Lyon) and whose rejected one a number."""
    return PairFactory(
        project=project,
        chosen="city='Lyon')]",
        rejected="city=3)]",
        chosen_value=0.4,
        rejected_value=-0.2,
        gap=0.6,
        deficiency="wrong_type",
        rejected_verdict={"valid": False, "deficiency": "wrong_type"},
        chosen_verdict={"valid": False, "deficiency": "wrong_value"},
    )


@pytest.fixture
def pair(project):
    return review_pair(project)


def test_approve_bumps_the_version_and_records_the_change(pair):
    user = UserFactory()
    done = pair_approve(pair_id=pair.pk, version=1, user=user)
    assert (done.status, done.version, done.reviewed_by) == ("approved", 2, user)
    event = ReviewEvent.objects.get()
    assert (event.action, event.version, event.user) == ("approve", 2, user)
    assert event.before == {"status": "pending"} and event.after == {"status": "approved"}


def test_a_stale_write_changes_nothing(pair):
    pair_reject(pair_id=pair.pk, version=1, user=UserFactory(), note="wrong city")
    with pytest.raises(StaleVersion) as info:
        pair_approve(pair_id=pair.pk, version=1, user=UserFactory())
    assert info.value.current.status == "rejected" and info.value.current.version == 2
    pair.refresh_from_db()
    assert (pair.status, pair.version) == ("rejected", 2) and ReviewEvent.objects.count() == 1


def test_edit_rescoring_with_the_checker(pair):
    edited = pair_edit(pair_id=pair.pk, version=1, user=UserFactory(), chosen="city='Paris')]")
    assert edited.status == "edited" and edited.original_chosen == "city='Lyon')]"
    assert edited.chosen_verdict["valid"] is True
    again = pair_edit(pair_id=pair.pk, version=2, user=UserFactory(), chosen="city='Rome')]")
    assert again.original_chosen == "city='Lyon')]"  # the first original is kept
    assert again.chosen_verdict["deficiency"] == "wrong_value"
    with pytest.raises(ValueError, match="cannot be empty"):
        pair_edit(pair_id=pair.pk, version=3, user=UserFactory(), chosen="  ")


def test_swap_and_flag(pair):
    swapped = pair_swap(pair_id=pair.pk, version=1, user=UserFactory())
    assert (swapped.chosen, swapped.rejected) == ("city=3)]", "city='Lyon')]")
    assert swapped.gap == pytest.approx(-0.6) and swapped.deficiency == "wrong_value"
    with pytest.raises(ValueError, match="needs a note"):
        pair_flag(pair_id=pair.pk, version=2, user=UserFactory(), note=" ")
    flagged = pair_flag(pair_id=pair.pk, version=2, user=UserFactory(), note="both wrong")
    assert (flagged.status, flagged.flag_note) == ("flagged", "both wrong")


@pytest.mark.django_db(transaction=True)
def test_concurrent_reviews_of_one_version_lose_nothing():
    """Two reviewers write the same version at once: exactly one lands, the other is told it is stale."""
    pair = review_pair(ProjectFactory(name="race"))
    users = [UserFactory(username="one"), UserFactory(username="two")]
    outcomes, barrier = [], threading.Barrier(2)

    def review(action, user):
        try:
            barrier.wait()
            action(pair_id=pair.pk, version=1, user=user)
            outcomes.append("ok")
        except StaleVersion:
            outcomes.append("stale")
        finally:
            connection.close()

    threads = [threading.Thread(target=review, args=(a, u)) for a, u in zip((pair_approve, pair_reject), users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "stale"]
    pair.refresh_from_db()
    assert pair.version == 2 and ReviewEvent.objects.filter(pair=pair).count() == 1
    assert pair.status == ReviewEvent.objects.get(pair=pair).after["status"]
