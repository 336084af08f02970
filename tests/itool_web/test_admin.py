"""Every model has a working admin: list (with its filters and search) and change pages render."""

import pytest
from django.contrib import admin
from django.urls import reverse

from apps.catalog.models import ImportJob, Query, QueryTool, Tool
from apps.curation.models import PreferencePair, ReviewEvent
from apps.datasets.models import DatasetSnapshot, SnapshotPair
from apps.projects.models import Membership
from apps.search.models import SearchTree, TreeNode
from apps.training.models import Checkpoint, EvalRun, TrainingRound
from tests.factories import UserFactory


@pytest.fixture
def one_of_each(project):
    user = UserFactory(username="boss", is_staff=True, is_superuser=True)
    Membership.objects.create(project=project, user=user, role="admin")
    tool = Tool.objects.create(project=project, name="get_time", schema_hash="h", parameters={"type": "object"})
    query = Query.objects.create(
        project=project,
        external_id="q1",
        source="openai",
        content_hash="c",
        messages=[{"role": "user", "content": "What time is it?"}],
        ground_truth=[],
    )
    QueryTool.objects.create(query=query, tool=tool, position=0)
    ckpt = Checkpoint.objects.create(project=project, name="tiny", path="/tmp/tiny", kind="tiny")
    rnd = TrainingRound.objects.create(project=project, number=1, policy_in=ckpt, progress={"stage": "draft"})
    tree = SearchTree.objects.create(project=project, round=rnd, query=query, policy=ckpt)
    root = TreeNode.objects.create(tree=tree, key="r", fragment="[get_time(", visits=2, value_sum=1.0)
    TreeNode.objects.create(
        tree=tree,
        parent=root,
        key="r.0",
        depth=1,
        fragment="tz='UTC')]",
        is_terminal=True,
        terminal_reward=1.0,
        verdict={"valid": True},
    )
    pair = PreferencePair.objects.create(
        project=project,
        round=rnd,
        query=query,
        tree=tree,
        node=root,
        chosen="tz='UTC')]",
        rejected="tz=1)]",
        gap=1.5,
        dedup_key="d",
        deficiency="wrong_type",
    )
    ReviewEvent.objects.create(
        pair=pair, user=user, action="approve", version=2, before={"status": "pending"}, after={"status": "approved"}
    )
    snap = DatasetSnapshot.objects.create(project=project, round=rnd, name="s1", content_hash="x", pair_count=1)
    SnapshotPair.objects.create(
        snapshot=snap, ordinal=0, pair=pair, query=query, chosen="a", rejected="b", status="approved"
    )
    EvalRun.objects.create(project=project, checkpoint=ckpt, round=rnd, metrics={"pass_rate": 0.5})
    ImportJob.objects.create(
        project=project, format="openai", file="imports/x.jsonl", status="running", progress_done=50, progress_total=200
    )
    return user


def test_every_registered_model_lists_and_opens(client, one_of_each):
    client.force_login(one_of_each)
    checked = 0
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = client.get(changelist)
        assert response.status_code == 200, changelist
        if model_admin.search_fields:
            assert client.get(changelist, {"q": "x"}).status_code == 200, changelist
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert client.get(change).status_code == 200, change
            checked += 1
    assert checked >= 14


def test_import_job_page_shows_progress(client, one_of_each):
    client.force_login(one_of_each)
    job = ImportJob.objects.get()
    page = client.get(reverse("admin:catalog_importjob_change", args=[job.pk])).content.decode()
    assert '<progress value="25" max="100">' in page
    assert "location.reload" in page  # still running: the page refreshes itself
