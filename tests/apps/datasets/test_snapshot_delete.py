"""Deleting a snapshot — itself, through a queryset, with its project, in the admin — removes its Parquet files
from the storage once the delete commits; a delete rolled back keeps them. Real transactions (not the test's
wrapping one), so on_commit runs as in production."""

from pathlib import Path

import pytest
from django.db import transaction
from django.db.models import RestrictedError
from django.urls import reverse

from apps.datasets.models import DatasetSnapshot, SnapshotFile
from apps.datasets.services import files as snapshot_files
from apps.datasets.services import snapshot_file_build, snapshot_file_request, snapshot_freeze
from apps.projects.models import Project
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def snapshot(project, make_pair):
    for i in range(3):
        make_pair("approved", rejected=f"city='Lyon{i}')]")
    return snapshot_freeze(project=project)


@pytest.fixture
def files(snapshot, media, monkeypatch):
    """The snapshot's openai and sharegpt Parquet files, written (the task's body, run here)."""
    monkeypatch.setattr("workers.tasks.datasets_snapshot_parquet.apply_async", lambda *a, **k: None)
    paths = []
    for fmt in ("openai", "sharegpt"):
        file = snapshot_file_build(file_id=snapshot_file_request(snapshot=snapshot, fmt=fmt).pk)
        assert file.status == SnapshotFile.Status.DONE
        paths.append(Path(file.file.path))
    assert all(path.is_file() for path in paths)
    assert {path.parent for path in paths} == {Path(media) / "snapshots" / str(snapshot.pk)}
    return paths


def test_deleting_a_snapshot_removes_its_files_once_the_delete_commits(snapshot, files):
    with transaction.atomic():
        snapshot.delete()
        assert all(path.is_file() for path in files)  # not yet: the delete could still roll back
    assert not any(path.exists() for path in files)
    assert not files[0].parent.exists()  # the snapshot's folder, now empty, too
    assert not SnapshotFile.objects.exists()


def test_a_queryset_delete_removes_the_files(project, snapshot, files):
    DatasetSnapshot.objects.filter(project=project).delete()
    assert not any(path.exists() for path in files)


def test_deleting_the_project_removes_its_snapshots_files(project, snapshot, files):
    with pytest.raises(RestrictedError):  # a frozen query alone stays while a snapshot holds it
        snapshot.items.first().query.delete()
    Project.objects.get(pk=project.pk).delete()
    assert not DatasetSnapshot.objects.exists()
    assert not any(path.exists() for path in files)


def test_a_delete_rolled_back_keeps_the_files(project, snapshot, files):
    with pytest.raises(RuntimeError), transaction.atomic():
        Project.objects.get(pk=project.pk).delete()
        raise RuntimeError("changed my mind")
    assert all(path.is_file() for path in files)
    assert SnapshotFile.objects.filter(status=SnapshotFile.Status.DONE).count() == 2


def test_a_file_already_gone_is_not_an_error(snapshot, files):
    files[0].unlink()
    snapshot.delete()
    assert not files[1].exists() and not DatasetSnapshot.objects.exists()


def test_the_admin_delete_removes_the_files(client, snapshot, files):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.post(reverse("admin:datasets_datasetsnapshot_delete", args=[snapshot.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not DatasetSnapshot.objects.exists()
    assert not any(path.exists() for path in files)


def test_a_file_written_for_a_snapshot_deleted_meanwhile_is_not_left_behind(snapshot, media, monkeypatch):
    monkeypatch.setattr("workers.tasks.datasets_snapshot_parquet.apply_async", lambda *a, **k: None)
    file = snapshot_file_request(snapshot=snapshot, fmt="openai")
    real = snapshot_files.write_parquet
    written = []

    def write_then_lose_the_row(rows, fmt, path, **kwargs):
        result = real(rows, fmt, path, **kwargs)
        written.append(Path(path))
        DatasetSnapshot.objects.filter(pk=snapshot.pk).delete()  # e.g. an admin, while the worker wrote
        return result

    monkeypatch.setattr(snapshot_files, "write_parquet", write_then_lose_the_row)
    with pytest.raises(SnapshotFile.DoesNotExist, match="deleted while it was being written"):
        snapshot_file_build(file_id=file.pk)
    assert written and not written[0].exists()


def test_a_round_keeps_its_snapshot_but_the_project_delete_takes_both(project, snapshot, files):
    from apps.training.models import TrainingRound
    from tests.factories import TrainingRoundFactory

    TrainingRoundFactory(project=project, number=1, state=TrainingRound.State.DONE, snapshot=snapshot)
    with pytest.raises(RestrictedError):
        DatasetSnapshot.objects.get(pk=snapshot.pk).delete()
    assert all(path.is_file() for path in files)
    Project.objects.get(pk=project.pk).delete()
    assert not TrainingRound.objects.exists() and not DatasetSnapshot.objects.exists()
    assert not any(path.exists() for path in files)
