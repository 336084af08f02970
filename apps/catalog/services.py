"""Writes to the catalog: records in (all-or-nothing), import jobs run, stalled import jobs reaped."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from apps.projects.models import Project
from itool_web.batching import batched
from workers.progress import Progress

from .importers import get_importer
from .models import ImportJob, Query, QueryTool, Tool
from .records import QuerySpec, RecordError, ToolSpec

BATCH = 500  # queries per bulk insert
HEARTBEAT_SECONDS = 5.0  # a running import job's row is touched at least this often (the reaper reads it)

log = logging.getLogger(__name__)


@dataclass
class ImportCounts:
    read: int = 0  # records read (a file's records when imported from a file, else the queries given)
    created: int = 0
    unchanged: int = 0
    tools_created: int = 0
    by_kind: dict = field(default_factory=dict)
    call_turns: int = 0  # conversation formats (ToolACE): assistant turns with calls…
    no_call_turns: int = 0  # …and without
    skipped: dict = field(default_factory=dict)  # turns that made no query, by reason

    def as_dict(self) -> dict:
        out = {
            "read": self.read,
            "created": self.created,
            "unchanged": self.unchanged,
            "tools_created": self.tools_created,
            "by_kind": self.by_kind,
        }
        if self.call_turns or self.no_call_turns or self.skipped:
            out.update(call_turns=self.call_turns, no_call_turns=self.no_call_turns, skipped=self.skipped)
        return out

    def summary(self) -> str:
        """One line for people: what was read, made and skipped."""
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items())) or "none"
        text = (
            f"{self.read} records read: {self.created} queries created, {self.unchanged} already present, "
            f"{self.tools_created} tools created (kinds: {kinds})"
        )
        if self.call_turns or self.no_call_turns or self.skipped:
            text += f"; assistant turns: {self.call_turns} with calls, {self.no_call_turns} without"
            skipped = sum(self.skipped.values())
            if skipped:
                reasons = "; ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items(), key=lambda r: -r[1]))
                text += f"; {skipped} skipped ({reasons})"
        return text


class _ToolCache:
    """Tool rows by (name, schema hash), created on first sight."""

    def __init__(self, project: Project, source: str, counts: ImportCounts):
        self.project, self.source, self.counts = project, source, counts
        self._rows: dict[tuple[str, str], Tool] = {}

    def get(self, spec: ToolSpec) -> Tool:
        key = (spec.name, spec.schema_hash)
        if key not in self._rows:
            tool, created = Tool.objects.get_or_create(
                project=self.project,
                name=spec.name,
                schema_hash=spec.schema_hash,
                defaults={
                    "description": spec.description,
                    "parameters": spec.parameters,
                    "implementation": spec.implementation,
                    "source": self.source,
                },
            )
            if not created and spec.implementation and not tool.implementation:
                tool.implementation = spec.implementation
                tool.save(update_fields=["implementation"])
            self.counts.tools_created += created
            self._rows[key] = tool
        return self._rows[key]


def records_write(*, project: Project, records: Iterable[QuerySpec], source: str, split: str) -> ImportCounts:
    """Store query records and their tools in one transaction: all of them, or (on any RecordError) none.

    A record whose external id is already stored with the same content is skipped; with different
    content it is an error, so re-importing a file changes nothing and a changed file is not merged.
    """
    counts = ImportCounts()
    tools = _ToolCache(project, source, counts)
    with transaction.atomic():
        for batch in batched(records, BATCH):
            counts.read += len(batch)
            existing = dict(
                Query.objects.filter(project=project, external_id__in=[r.external_id for r in batch]).values_list(
                    "external_id", "content_hash"
                )
            )
            fresh: list[QuerySpec] = []
            for rec in batch:
                digest = rec.content_hash
                # earlier batches are in the database already (this transaction sees them); this one
                # is checked against itself as it goes
                known = existing.get(rec.external_id)
                if known is not None:
                    if known != digest:
                        raise RecordError(
                            "id", f"{rec.external_id!r} is already imported with different content", rec.line
                        )
                    counts.unchanged += 1
                    continue
                existing[rec.external_id] = digest
                fresh.append(rec)
            rows = Query.objects.bulk_create(
                [
                    Query(
                        project=project,
                        external_id=rec.external_id,
                        source=source,
                        messages=rec.messages,
                        ground_truth=rec.ground_truth,
                        reference_output=rec.reference_output,
                        sub_answers=rec.sub_answers,
                        final_answer=rec.final_answer,
                        metadata=rec.metadata,
                        kind=rec.kind,
                        split=rec.split or split,
                        difficulty=rec.difficulty,
                        difficulty_bucket=rec.difficulty_bucket,
                        content_hash=rec.content_hash,
                    )
                    for rec in fresh
                ]
            )
            QueryTool.objects.bulk_create(
                [
                    QueryTool(query=row, tool=tools.get(spec), position=pos)
                    for row, rec in zip(rows, fresh)
                    for pos, spec in enumerate(rec.tools)
                ]
            )
            counts.created += len(fresh)
            for rec in fresh:
                counts.by_kind[rec.kind] = counts.by_kind.get(rec.kind, 0) + 1
    return counts


def import_file(
    *,
    project: Project,
    path: str | Path,
    fmt: str,
    split: str = Query.Split.TRAIN,
    answers_path: str | Path | None = None,
    progress: Progress | None = None,
    name: str | None = None,
) -> ImportCounts:
    """Import one file in a given format (see `importers`); raises RecordError naming line and field.

    `name` is the file's original name when it is stored under another (an upload)."""
    importer = get_importer(fmt)
    records = importer.read(
        Path(path), answers_path=Path(answers_path) if answers_path else None, progress=progress, name=name
    )
    counts = records_write(project=project, records=records, source=importer.name, split=split)
    report = importer.report
    counts.read = report.records
    counts.call_turns, counts.no_call_turns, counts.skipped = report.call_turns, report.no_call_turns, report.skipped
    return counts


def import_job_run(*, job_id: int) -> ImportJob:
    """Run an ImportJob (from the admin upload form or REST): progress and a heartbeat on the row, the counts
    when done. Whatever goes wrong — a bad record, an unreadable file, a bug — the job ends failed with the
    reason (nothing is written: the import is one transaction), never left running."""
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return job  # a redelivered task has nothing left to do
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(), error=""
    )
    last = {"done": -1, "at": time.monotonic()}

    def progress(p: dict) -> None:
        done, total = p["done"], p["total"]
        # one UPDATE per ~1% of the bytes, or per HEARTBEAT_SECONDS, keeps the bar and the heartbeat live
        # without slowing the import
        now = time.monotonic()
        if (
            done - last["done"] >= max(1, total // 100)
            or (done == total and last["done"] != total)
            or now - last["at"] >= HEARTBEAT_SECONDS
        ):
            last.update(done=done, at=now)
            ImportJob.objects.filter(pk=job.pk).update(
                progress_done=done, progress_total=total, heartbeat_at=timezone.now()
            )

    try:
        counts = import_file(
            project=job.project,
            path=job.file.path,
            fmt=job.format,
            split=job.split,
            answers_path=job.answers_file.path if job.answers_file else None,
            progress=progress,
            name=job.original_name or None,
        )
    except (RecordError, OSError, ValueError) as exc:
        _import_job_fail(job.pk, str(exc))
    except Exception as exc:  # noqa: BLE001 - a job must end failed with the reason, whatever the reason
        log.exception("import job %s failed", job.pk)
        _import_job_fail(job.pk, f"unexpected error: {type(exc).__name__}: {exc}")
    else:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.DONE, counts=counts.as_dict(), finished_at=timezone.now(), error=""
        )
    job.refresh_from_db()
    return job


def _import_job_fail(job_id: int, error: str) -> None:
    error = error.replace("\x00", "\\u0000")  # the reason may quote the bad input; PostgreSQL refuses NUL
    ImportJob.objects.filter(pk=job_id).update(status=ImportJob.Status.FAILED, error=error, finished_at=timezone.now())


def import_jobs_reap(*, stalled_after: timedelta | None = None, now=None) -> list[int]:
    """Mark failed every running import job whose worker sent no heartbeat for `stalled_after` (default
    settings.IMPORT_STALL_MINUTES, 30): it died — killed, out of memory, machine lost. Nothing of it was
    written (an import is one transaction); it can be uploaded again. Jobs still waiting in the queue are
    not touched. Returns the ids."""
    if stalled_after is None:
        stalled_after = timedelta(minutes=settings.IMPORT_STALL_MINUTES)
    now = now or timezone.now()
    reaped = []
    stalled = ImportJob.objects.filter(status=ImportJob.Status.RUNNING).filter(
        models.Q(heartbeat_at__lt=now - stalled_after)
        | models.Q(heartbeat_at__isnull=True, started_at__lt=now - stalled_after)
    )
    for job in stalled:
        since = job.heartbeat_at or job.started_at
        updated = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(
            status=ImportJob.Status.FAILED,
            finished_at=now,
            error=f"the import worker sent no progress since {since:%Y-%m-%d %H:%M:%S} UTC (over "
            f"{int(stalled_after.total_seconds())} s): it died or lost its connection; nothing was "
            "imported — upload the file again",
        )
        if updated:
            reaped.append(job.pk)
    return reaped


def import_job_enqueue(job_id: int) -> None:
    """Send an import job to the importer task (`catalog.import_job_run`) and keep the task id on the job;
    the admin's upload form and the REST upload both call this after their transaction commits."""
    from workers.tasks import catalog_import_job_run

    result = catalog_import_job_run.delay(job_id)
    ImportJob.objects.filter(pk=job_id).update(task_id=result.id or "")
