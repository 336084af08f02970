"""Snapshot files: a Parquet file of a snapshot requested (once), written by a worker, checked and discarded."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import DatasetSnapshot, SnapshotFile
from ..parquet import write_parquet
from ..rows import check_format
from .export import EXPORT_CHUNK, snapshot_rows

FILE_TASK_LIMIT = timedelta(hours=6)  # datasets.snapshot_parquet's time_limit (workers/tasks.py)


def snapshot_file_request(
    *,
    snapshot: DatasetSnapshot,
    fmt: str,
    span: str = "fragment",
    kind: str = SnapshotFile.Kind.PARQUET,
    created_by=None,
) -> SnapshotFile:
    """The snapshot's file in `fmt` (and `span`, trl only): the existing row whatever its state, unless it
    failed (or its bytes are gone, or its worker died past the task's time limit). A new or failed one is set
    pending and the task `datasets.snapshot_parquet` is sent once the transaction commits; of two concurrent
    requests for a failed file, one sends it. ValueError for an unknown format or span, or a trl file of a
    snapshot without a checkpoint."""
    check_format(fmt, span)
    if kind not in SnapshotFile.Kind.values:
        raise ValueError(f"unknown file kind {kind!r}: expected one of {', '.join(SnapshotFile.Kind.values)}")
    if fmt != "trl":
        span = "fragment"  # only trl has a span: one file per format for the others
    if fmt == "trl" and snapshot.checkpoint_id is None:
        raise ValueError(
            f"snapshot #{snapshot.pk} has no checkpoint: trl prompts need a policy's chat template "
            "(openai and sharegpt files do not)"
        )
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        file, created = SnapshotFile.objects.get_or_create(
            snapshot=snapshot, format=fmt, span=span, kind=kind, defaults={"created_by": created_by, "task_id": task_id}
        )
        if not created:
            snapshot_file_check(file=file)  # done, but gone from the storage: failed, so made again below
        # a failed file is made again; so is one left running by a worker killed past the task's time limit
        stale = Q(status=SnapshotFile.Status.FAILED) | Q(
            status=SnapshotFile.Status.RUNNING, started_at__lt=timezone.now() - FILE_TASK_LIMIT
        )
        retry = not created and SnapshotFile.objects.filter(stale, pk=file.pk).update(
            status=SnapshotFile.Status.PENDING,
            error="",
            rows=0,
            bytes=0,
            sha256="",
            file="",
            task_id=task_id,
            started_at=None,
            finished_at=None,
            created_by=created_by or file.created_by,
        )
        if created or retry:
            from workers.tasks import datasets_snapshot_parquet

            transaction.on_commit(lambda: datasets_snapshot_parquet.apply_async(args=[file.pk], task_id=task_id))
    file.refresh_from_db()
    return file


def _file_fail(file_id: int, error: str) -> None:
    SnapshotFile.objects.filter(pk=file_id).update(
        status=SnapshotFile.Status.FAILED, error=error[:10_000], finished_at=timezone.now()
    )


def snapshot_file_build(*, file_id: int) -> SnapshotFile:
    """Write a SnapshotFile (the task's body): rows streamed from the snapshot into a temporary file, renamed
    into place under MEDIA_ROOT when whole; the count so far on the row while it runs; then its size, rows and
    sha256, or the reason it failed. A file already done is left as it is (a redelivered task)."""
    file = SnapshotFile.objects.select_related("snapshot__checkpoint").get(pk=file_id)
    storage = file.file.storage
    if file.status == SnapshotFile.Status.DONE and file.file and storage.exists(file.file.name):
        return file
    SnapshotFile.objects.filter(pk=file.pk).update(
        status=SnapshotFile.Status.RUNNING, started_at=timezone.now(), error="", rows=0
    )
    snapshot = file.snapshot
    name = f"snapshots/{snapshot.pk}/{file.filename}"
    try:
        rows = snapshot_rows(snapshot, file.format, file.span, chunk_size=EXPORT_CHUNK)
        written = write_parquet(
            rows,
            file.format,
            storage.path(name),
            total=snapshot.pair_count,
            progress=lambda p: SnapshotFile.objects.filter(pk=file.pk).update(rows=p["done"]),
        )
        if written.rows != snapshot.pair_count:
            storage.delete(name)
            raise ValueError(f"wrote {written.rows} rows but the snapshot has {snapshot.pair_count}")
    except Exception as exc:  # noqa: BLE001 - any failure is the row's, with its reason (soft time limit too)
        _file_fail(file.pk, f"{type(exc).__name__}: {exc}")
    else:
        recorded = SnapshotFile.objects.filter(pk=file.pk).update(
            status=SnapshotFile.Status.DONE,
            file=name,
            bytes=written.bytes,
            rows=written.rows,
            sha256=written.sha256,
            error="",
            finished_at=timezone.now(),
        )
        if not recorded:  # the row (its snapshot) was deleted while the file was written: nothing will delete it
            snapshot_file_discard(storage=storage, name=name)
            raise SnapshotFile.DoesNotExist(f"snapshot file #{file.pk} was deleted while it was being written")
    file.refresh_from_db()
    return file


def snapshot_file_discard(*, storage, name: str) -> None:
    """Remove a snapshot file's bytes from the storage, and its snapshot's folder once empty (on a local disk).
    A file already gone is not an error."""
    storage.delete(name)  # Django's storages ignore a missing name
    try:
        folder = Path(storage.path(name)).parent
    except NotImplementedError:  # a remote storage: no folders to tidy
        return
    try:
        folder.rmdir()  # only if empty
    except OSError:
        pass


def snapshot_file_check(*, file: SnapshotFile) -> SnapshotFile:
    """A done file whose bytes are gone from the disk is marked failed (so that a new request makes it
    again); returns the row as it now is."""
    if file.status == SnapshotFile.Status.DONE and not (file.file and file.file.storage.exists(file.file.name)):
        _file_fail(file.pk, f"the file {file.file.name or '(none)'} is missing from the storage: request it again")
        file.refresh_from_db()
    return file
