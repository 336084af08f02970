"""Freezing: only approved and edited pairs, in a stable order, hashed; the same content frozen twice is one
snapshot; later edits do not reach it; bad selections are refused with a clear message."""

import pytest

from apps.curation.services import pair_edit
from apps.datasets.models import DatasetSnapshot, ImmutableError, SnapshotPair
from apps.datasets.services import snapshot_content_hash, snapshot_export, snapshot_freeze
from tests.factories import CheckpointFactory, ProjectFactory, QueryFactory, TrainingRoundFactory, UserFactory


def frozen_texts(snapshot):
    return list(snapshot.items.order_by("ordinal").values_list("ordinal", "pair_id", "status", "chosen"))


def test_freezes_only_approved_and_edited_pairs(project, make_pair, round_):
    kept = [make_pair("approved", round=round_), make_pair("edited", round=round_, chosen="city='Paris' )]")]
    for status in ("pending", "rejected", "flagged"):
        make_pair(status, round=round_)
    make_pair("approved")  # another round's (none): not in this round's snapshot

    snapshot = snapshot_freeze(project=project, round=round_)

    assert snapshot.pair_count == 2 == snapshot.items.count()
    assert frozen_texts(snapshot) == [
        (0, kept[0].pk, "approved", "city='Paris')]"),
        (1, kept[1].pk, "edited", "city='Paris' )]"),
    ]
    assert (snapshot.round, snapshot.checkpoint, snapshot.name) == (round_, round_.policy_in, "round 1")
    assert snapshot.filters == {"status": ["approved", "edited"], "round": round_.pk}


def test_rows_are_ordered_by_query_then_pair_and_the_hash_is_stable(project, make_pair):
    first, second = QueryFactory(project=project), QueryFactory(project=project)
    # created interleaved: the snapshot groups each query's pairs (its prompt is rendered once on export)
    a = make_pair("approved", query=second, chosen="A")
    b = make_pair("approved", query=first, chosen="B")
    c = make_pair("approved", query=second, chosen="C")
    d = make_pair("approved", query=first, chosen="D")

    snapshot = snapshot_freeze(project=project)

    assert [row[1] for row in frozen_texts(snapshot)] == [b.pk, d.pk, a.pk, c.pk]
    assert len(snapshot.content_hash) == 64 and int(snapshot.content_hash, 16) >= 0
    stored = DatasetSnapshot.objects.get(pk=snapshot.pk)
    assert stored.content_hash == snapshot.content_hash == snapshot_content_hash(stored)
    assert stored.pair_count == 4


def test_the_same_content_frozen_twice_is_one_snapshot(project, make_pair, checkpoint):
    make_pair("approved")
    make_pair("edited")
    one = snapshot_freeze(project=project, name="first")
    again = snapshot_freeze(project=project, name="second", created_by=UserFactory())

    assert again.pk == one.pk and again.name == "first"
    assert DatasetSnapshot.objects.count() == 1 and SnapshotPair.objects.count() == 2
    # another selection, or another checkpoint rendering the prompts, is another dataset
    only_edited = snapshot_freeze(project=project, filters={"status": ["edited"]})
    other_template = snapshot_freeze(project=project, checkpoint=CheckpointFactory(project=project))
    assert len({one.content_hash, only_edited.content_hash, other_template.content_hash}) == 3
    assert DatasetSnapshot.objects.count() == 3


def test_edits_after_freezing_do_not_reach_the_snapshot(project, make_pair, checkpoint):
    pair = make_pair("approved")
    snapshot = snapshot_freeze(project=project)
    before = b"".join(snapshot_export(snapshot, "trl"))

    pair_edit(pair_id=pair.pk, version=pair.version, user=UserFactory(), chosen="city='Rome')]")

    item = SnapshotPair.objects.get(snapshot=snapshot)
    assert (item.chosen, item.status) == ("city='Paris')]", "approved")
    assert b"".join(snapshot_export(DatasetSnapshot.objects.get(pk=snapshot.pk), "trl")) == before
    assert snapshot_content_hash(snapshot) == snapshot.content_hash
    newer = snapshot_freeze(project=project)
    assert newer.pk != snapshot.pk and newer.items.get().chosen == "city='Rome')]"


def test_a_frozen_snapshot_cannot_be_changed(project, make_pair):
    make_pair("approved")
    snapshot = snapshot_freeze(project=project)
    item = snapshot.items.get()
    item.chosen = "tampered"
    with pytest.raises(ImmutableError):
        item.save()
    snapshot = DatasetSnapshot.objects.get(pk=snapshot.pk)
    snapshot.name = "renamed"
    with pytest.raises(ImmutableError):
        snapshot.save()
    assert snapshot.items.get().chosen == "city='Paris')]"


def test_an_empty_selection_is_refused_and_leaves_nothing(project, make_pair, round_):
    make_pair("pending", round=round_)
    make_pair("rejected", round=round_)
    with pytest.raises(ValueError, match="no approved or edited pairs .* nothing to freeze"):
        snapshot_freeze(project=project, round=round_)
    with pytest.raises(ValueError, match="nothing to freeze"):
        snapshot_freeze(project=project, filters={"min_gap": 5})
    assert DatasetSnapshot.objects.count() == 0 and SnapshotPair.objects.count() == 0


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"colour": "red"}, "unknown snapshot filter.*'colour'.*expected some of status, round"),
        ({"status": ["approved", "pending"]}, "filter 'status': unknown value.*'pending'"),
        ({"status": []}, "filter 'status'"),
        ({"deficiency": "typo"}, "filter 'deficiency': unknown value.*'typo'"),
        ({"kind": ["single", "huge"]}, "filter 'kind': unknown value.*'huge'"),
        ({"min_gap": "0.5"}, "filter 'min_gap': expected a finite number"),
        ({"max_gap": float("nan")}, "filter 'max_gap': expected a finite number"),
        ({"min_gap": 0.8, "max_gap": 0.2}, "min_gap 0.8 is above max_gap 0.2"),
        ({"round": "first"}, "filter 'round': expected a round id"),
        ({"round": 999999}, "filter 'round': no round #999999 in project 'test-project'"),
    ],
)
def test_bad_filters_are_refused(project, make_pair, filters, message):
    make_pair("approved")
    with pytest.raises(ValueError, match=message):
        snapshot_freeze(project=project, filters=filters)
    assert DatasetSnapshot.objects.count() == 0


def test_rounds_and_checkpoints_must_fit_the_project(project, make_pair, round_, checkpoint):
    make_pair("approved", round=round_)
    other = ProjectFactory(name="other")
    with pytest.raises(ValueError, match="belongs to another project"):
        snapshot_freeze(project=project, round=TrainingRoundFactory(project=other))
    with pytest.raises(ValueError, match="filter 'round': no round"):
        snapshot_freeze(project=project, filters={"round": TrainingRoundFactory(project=other).pk})
    with pytest.raises(ValueError, match="belongs to another project"):
        snapshot_freeze(project=project, checkpoint=CheckpointFactory(project=other))
    with pytest.raises(ValueError, match=f"is #{round_.pk + 1000} but the snapshot is frozen for round"):
        snapshot_freeze(project=project, round=round_, filters={"round": round_.pk + 1000})
    with pytest.raises(ValueError, match="cannot be rendered with checkpoint"):
        snapshot_freeze(project=project, round=round_, checkpoint=CheckpointFactory(project=project))


def test_filters_select_pairs(project, make_pair, round_):
    wide = make_pair("approved", round=round_, chosen_value=0.9, rejected_value=-0.6)  # gap 1.5
    narrow = make_pair("edited", round=round_, chosen_value=0.5, rejected_value=0.3, deficiency="wrong_type")
    parallel = make_pair("approved", query=QueryFactory(project=project, kind="parallel"))

    def frozen(**filters):
        return {item.pair_id for item in snapshot_freeze(project=project, filters=filters).items.all()}

    assert frozen(round=round_.pk) == {wide.pk, narrow.pk}
    assert frozen(min_gap=1.0) == {wide.pk}
    assert frozen(max_gap=0.5) == {narrow.pk}
    assert frozen(deficiency="wrong_type") == {narrow.pk}
    assert frozen(kind=["parallel"]) == {parallel.pk}
    assert frozen(status="approved") == {wide.pk, parallel.pk}
    assert frozen() == {wide.pk, narrow.pk, parallel.pk}


def test_the_rendering_checkpoint(project, make_pair, round_, checkpoint):
    """The round's input policy, else the given checkpoint, else the project's latest."""
    make_pair("approved", round=round_)
    newer = CheckpointFactory(project=project, name="newer")
    assert snapshot_freeze(project=project, round=round_).checkpoint == checkpoint
    assert snapshot_freeze(project=project, round=round_, checkpoint=checkpoint).checkpoint == checkpoint
    assert snapshot_freeze(project=project, checkpoint=checkpoint).checkpoint == checkpoint
    assert snapshot_freeze(project=project).checkpoint == newer
    by_filter = snapshot_freeze(project=project, filters={"round": round_.pk})
    assert (by_filter.round, by_filter.checkpoint) == (round_, checkpoint)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_freezes_of_the_same_content_make_one_snapshot():
    import threading

    from django.db import connection

    from apps.curation.models import PreferencePair

    project = ProjectFactory(name="race")
    query = QueryFactory(project=project)
    # enough rows that the two copies overlap (on PostgreSQL the loser then hits the unique hash)
    PreferencePair.objects.bulk_create(
        PreferencePair(
            project=project,
            query=query,
            prefix="[get_weather(",
            chosen=f"city='Paris{i}')]",
            rejected="city='Lyon')]",
            status="approved",
            dedup_key=f"race-{i}",
        )
        for i in range(3000)
    )
    results, errors, barrier = [], [], threading.Barrier(2)

    def freeze():
        try:
            barrier.wait()
            results.append(snapshot_freeze(project=project).pk)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=freeze) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert DatasetSnapshot.objects.count() == 1 and SnapshotPair.objects.count() == 3000
