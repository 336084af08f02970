"""Writes to the catalog: records in (all-or-nothing), import jobs run."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from apps.projects.models import Project
from itool_web.batching import batched

from .importers import get_importer
from .models import ImportJob, Query, QueryTool, Tool
from .records import QuerySpec, RecordError, ToolSpec

BATCH = 500  # queries per bulk insert

ProgressFn = Callable[[int, int], None]  # (done, total) in bytes


@dataclass
class ImportCounts:
    read: int = 0
    created: int = 0
    unchanged: int = 0
    tools_created: int = 0
    by_kind: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "created": self.created,
            "unchanged": self.unchanged,
            "tools_created": self.tools_created,
            "by_kind": self.by_kind,
        }


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
    progress: ProgressFn | None = None,
) -> ImportCounts:
    """Import one file in a given format (see `importers`); raises RecordError naming line and field."""
    importer = get_importer(fmt)
    records = importer.read(Path(path), answers_path=Path(answers_path) if answers_path else None, progress=progress)
    return records_write(project=project, records=records, source=importer.name, split=split)


def import_job_run(*, job_id: int) -> ImportJob:
    """Run an ImportJob (from the admin upload form): progress on the row, the reason on failure."""
    job = ImportJob.objects.select_related("project").get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return job  # a redelivered task has nothing left to do
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, started_at=timezone.now(), error="")

    last = [0]

    def progress(done: int, total: int) -> None:
        # one UPDATE per ~1% keeps the progress bar live without slowing the import
        if done - last[0] >= max(1, total // 100) or done == total:
            last[0] = done
            ImportJob.objects.filter(pk=job.pk).update(progress_done=done, progress_total=total)

    try:
        counts = import_file(
            project=job.project,
            path=job.file.path,
            fmt=job.format,
            split=job.split,
            answers_path=job.answers_file.path if job.answers_file else None,
            progress=progress,
        )
    except (RecordError, OSError, ValueError) as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
    else:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.DONE, counts=counts.as_dict(), finished_at=timezone.now()
        )
    job.refresh_from_db()
    return job


def import_job_enqueue(job_id: int) -> None:
    """Send an import job to the importer task (`catalog.import_job_run`) and keep the task id on the job;
    the admin's upload form and the REST upload both call this after their transaction commits."""
    from workers.tasks import catalog_import_job_run

    result = catalog_import_job_run.delay(job_id)
    ImportJob.objects.filter(pk=job_id).update(task_id=result.id or "")
