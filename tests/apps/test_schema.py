"""The schema serves the loop's hot reads from indexes, and its deletion rules keep data consistent."""

import pytest
from django.db import connection
from django.db.models import RestrictedError

from apps.catalog.models import Query, QueryTool, Tool
from apps.curation.models import PreferencePair, ReviewEvent
from apps.datasets.models import DatasetSnapshot, ImmutableError, SnapshotPair
from apps.search.models import SearchTree, TreeNode
from apps.training.models import RoundQuery, TrainingRound
from tests.factories import UserFactory

# (the read, its model, the columns it filters on then sorts by): an index must lead with them.
HOT_READS = [
    ("review queue: pending pairs, smallest gap first", PreferencePair, ["project_id", "status", "gap"]),
    ("launch gate: a round's pairs by status", PreferencePair, ["round_id", "status"]),
    ("pairs by deficiency", PreferencePair, ["project_id", "deficiency"]),
    ("assigned to me", PreferencePair, ["assignee_id", "status"]),
    ("the same pair found twice", PreferencePair, ["project_id", "dedup_key"]),
    ("all nodes of a tree; resume without duplicates", TreeNode, ["tree_id", "key"]),
    ("children of a node", TreeNode, ["parent_id"]),
    ("a pair's history", ReviewEvent, ["pair_id", "created_at"]),
    ("a reviewer's events", ReviewEvent, ["user_id", "created_at"]),
    ("warm-up curriculum bucket", Query, ["project_id", "split", "difficulty_bucket"]),
    ("re-import by external id", Query, ["project_id", "external_id"]),
    ("a round's trees", SearchTree, ["round_id", "status"]),
    ("a round's selected queries", RoundQuery, ["round_id", "selected"]),
    ("a snapshot's rows in order", SnapshotPair, ["snapshot_id", "ordinal"]),
]


@pytest.mark.parametrize("what, model, columns", HOT_READS, ids=[h[0] for h in HOT_READS])
def test_hot_reads_have_an_index(db, what, model, columns):
    with connection.cursor() as cur:
        constraints = connection.introspection.get_constraints(cur, model._meta.db_table)
    leading = [c["columns"][: len(columns)] for c in constraints.values() if c["index"] or c["unique"]]
    assert columns in leading, f"{what}: no index on {model._meta.db_table} leads with {columns}"


def test_deleting_a_project_removes_its_rows_but_a_used_tool_cannot_be_deleted(project):
    tool = Tool.objects.create(project=project, name="t", schema_hash="h")
    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    QueryTool.objects.create(query=query, tool=tool, position=0)
    with pytest.raises(RestrictedError):
        tool.delete()
    project.delete()
    assert Tool.objects.count() == Query.objects.count() == QueryTool.objects.count() == 0


def test_snapshots_are_immutable(project):
    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    snap = DatasetSnapshot.objects.create(project=project, name="s", content_hash="abc", pair_count=1)
    item = SnapshotPair.objects.create(
        snapshot=snap, ordinal=0, query=query, chosen="a", rejected="b", status="approved"
    )
    snap.name = "renamed"
    with pytest.raises(ImmutableError):
        snap.save()
    item.chosen = "edited later"
    with pytest.raises(ImmutableError):
        item.save()
    assert DatasetSnapshot.objects.get().name == "s" and SnapshotPair.objects.get().chosen == "a"
    # a snapshot a round trained on cannot be deleted from under it
    TrainingRound.objects.create(project=project, number=1, snapshot=snap)
    with pytest.raises(RestrictedError):
        snap.delete()


def test_tree_node_keys_are_unique_per_tree(project):
    from django.db import IntegrityError, transaction

    query = Query.objects.create(project=project, external_id="q", source="x", messages=[], content_hash="c")
    tree = SearchTree.objects.create(project=project, query=query)
    TreeNode.objects.create(tree=tree, key="root")
    with pytest.raises(IntegrityError), transaction.atomic():
        TreeNode.objects.create(tree=tree, key="root")
    # a resumed worker re-inserting nodes it already wrote gets no duplicates
    TreeNode.objects.bulk_create([TreeNode(tree=tree, key="root"), TreeNode(tree=tree, key="a")], ignore_conflicts=True)
    assert sorted(tree.nodes.values_list("key", flat=True)) == ["a", "root"]


def test_one_membership_per_user_and_project(project):
    from django.db import IntegrityError, transaction

    from apps.projects.services import membership_set

    user = UserFactory()
    membership_set(project=project, user=user, role="annotator")
    membership_set(project=project, user=user, role="reviewer")
    assert list(project.memberships.values_list("role", flat=True)) == ["reviewer"]
    with pytest.raises(ValueError, match="unknown role"):
        membership_set(project=project, user=user, role="owner")
    with pytest.raises(IntegrityError), transaction.atomic():
        project.memberships.create(user=user, role="admin")
