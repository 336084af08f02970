"""Snapshots: freezing reviewed pairs into an immutable, hashed dataset, streaming one out as JSON Lines, and
writing one to a Parquet file on a worker."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.catalog.models import Query, QueryTool, Tool
from apps.curation.models import PreferencePair
from apps.rewards.deficiency import Deficiency
from apps.training.models import Checkpoint, TrainingRound
from apps.training.policy import policy_tokenizer, query_prompt
from itool_web.batching import batched

from .completion import CompletionStats, complete_chunk
from .models import DatasetSnapshot, SnapshotFile, SnapshotPair
from .parquet import write_parquet
from .rows import ITEM_FIELDS, LINES, ROW_FIELDS, check_format, query_fields, render_row

FROZEN_STATUSES = (PreferencePair.Status.APPROVED.value, PreferencePair.Status.EDITED.value)
FILTER_KEYS = ("status", "round", "deficiency", "min_gap", "max_gap", "kind")
FREEZE_BATCH = 2000  # pairs read and inserted per round trip while freezing
FILE_TASK_LIMIT = timedelta(hours=6)  # datasets.snapshot_parquet's time_limit (workers/tasks.py)
EXPORT_CHUNK = 2000  # snapshot rows per fetch while exporting (and queries fetched per batch)
TOOL_CACHE = 2000  # tools kept between an export's chunks

# What a frozen row is made of, in hash order. The query's content hash is in it so that a query imported
# again with other content would not pass for the same data.
_FROZEN_FIELDS = (
    "query_id",
    "query__content_hash",
    "prefix",
    "chosen",
    "rejected",
    "deficiency",
    "gap",
    "status",
)  # after the pair's id


class _AlreadyFrozen(Exception):
    def __init__(self, snapshot: DatasetSnapshot):
        self.snapshot = snapshot


# --- freeze --------------------------------------------------------------------------------------------


def _as_list(value, key: str) -> list:
    values = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"filter {key!r}: expected a value or a list of values, got {type(value).__name__}")
    return list(values)


def _choice_filter(filters: dict, key: str, allowed: Iterable[str]) -> list[str] | None:
    if key not in filters:
        return None
    allowed = list(allowed)
    values = _as_list(filters[key], key)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(
            f"filter {key!r}: unknown value(s) {bad or values!r}; expected some of "
            f"{', '.join(repr(a) for a in allowed)}"
        )
    return sorted(set(values))


def _number_filter(filters: dict, key: str) -> float | None:
    if key not in filters:
        return None
    value = filters[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"filter {key!r}: expected a finite number, got {value!r}")
    return float(value)


def _round_filter(*, project, filters: dict, round: TrainingRound | None) -> TrainingRound | None:
    round_id = filters.get("round")
    if round_id is not None:
        if isinstance(round_id, str) and round_id.isdigit():
            round_id = int(round_id)
        if isinstance(round_id, bool) or not isinstance(round_id, int):
            raise ValueError(f"filter 'round': expected a round id, got {round_id!r}")
    if round is not None:
        if round.project_id != project.pk:
            raise ValueError(f"round #{round.pk} belongs to another project than {project.name!r}")
        if round_id is not None and round_id != round.pk:
            raise ValueError(f"filter 'round' is #{round_id} but the snapshot is frozen for round #{round.pk}")
        return round
    if round_id is None:
        return None
    found = TrainingRound.objects.filter(pk=round_id, project=project).select_related("policy_in").first()
    if found is None:
        raise ValueError(f"filter 'round': no round #{round_id} in project {project.name!r}")
    return found


def snapshot_filters_clean(
    *, project, filters: dict | None = None, round: TrainingRound | None = None
) -> tuple[dict, TrainingRound | None]:
    """Validate a freeze selection; returns it normalised (as the snapshot records it) and the round it names.

    Keys: `status` (approved and/or edited; both by default), `round` (a round id), `deficiency` (one or
    several of the checker's labels, "" = none), `min_gap` / `max_gap` (value gap bounds), `kind` (query
    kinds). Unknown keys or values raise ValueError.
    """
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise ValueError(
            f"unknown snapshot filter(s) {', '.join(map(repr, unknown))}: expected some of {', '.join(FILTER_KEYS)}"
        )
    clean: dict = {
        "status": _choice_filter({"status": filters.get("status", list(FROZEN_STATUSES))}, "status", FROZEN_STATUSES)
    }
    rnd = _round_filter(project=project, filters=filters, round=round)
    if rnd is not None:
        clean["round"] = rnd.pk
    deficiency = _choice_filter(filters, "deficiency", [d.value for d in Deficiency])
    if deficiency is not None:
        clean["deficiency"] = deficiency
    for key in ("min_gap", "max_gap"):
        value = _number_filter(filters, key)
        if value is not None:
            clean[key] = value
    if clean.get("min_gap", -math.inf) > clean.get("max_gap", math.inf):
        raise ValueError(f"min_gap {clean['min_gap']} is above max_gap {clean['max_gap']}")
    kind = _choice_filter(filters, "kind", Query.Kind.values)
    if kind is not None:
        clean["kind"] = kind
    return clean, rnd


def snapshot_selection(*, project, filters: dict):
    """The pairs a cleaned selection freezes, in the snapshot's stable order (by query, then pair id)."""
    pairs = PreferencePair.objects.filter(project=project, status__in=filters["status"])
    if "round" in filters:
        pairs = pairs.filter(round_id=filters["round"])
    if "deficiency" in filters:
        pairs = pairs.filter(deficiency__in=filters["deficiency"])
    if "min_gap" in filters:
        pairs = pairs.filter(gap__gte=filters["min_gap"])
    if "max_gap" in filters:
        pairs = pairs.filter(gap__lte=filters["max_gap"])
    if "kind" in filters:
        pairs = pairs.filter(query__kind__in=filters["kind"])
    return pairs.order_by("query_id", "id")


def _render_checkpoint(*, project, round: TrainingRound | None, checkpoint: Checkpoint | None) -> Checkpoint | None:
    """The policy whose chat template renders the prompts: the round's input policy (the one it trains),
    else the given checkpoint, else the project's latest."""
    if checkpoint is not None and checkpoint.project_id != project.pk:
        raise ValueError(f"checkpoint #{checkpoint.pk} belongs to another project than {project.name!r}")
    if round is not None and round.policy_in_id is not None:
        if checkpoint is not None and checkpoint.pk != round.policy_in_id:
            raise ValueError(
                f"round #{round.pk} trains checkpoint #{round.policy_in_id}: its prompts cannot be "
                f"rendered with checkpoint #{checkpoint.pk}"
            )
        return round.policy_in
    if checkpoint is not None:
        return checkpoint
    from apps.training.selectors import checkpoint_latest

    return checkpoint_latest(project=project)


def _content_hasher(checkpoint_id: int | None):
    """sha256 over a header naming the rendering checkpoint (another template is another dataset), then one
    canonical JSON line per frozen row in order."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"checkpoint": checkpoint_id}).encode() + b"\n")
    return digest


def _hash_row(digest, ordinal: int, values: tuple) -> None:
    digest.update(json.dumps([ordinal, *values], ensure_ascii=False).encode() + b"\n")


def snapshot_content_hash(snapshot: DatasetSnapshot) -> str:
    """The content hash recomputed from the stored rows: equal to `snapshot.content_hash` unless the rows
    were changed behind the models' back (or a frozen pair was deleted since: its id reads as null)."""
    digest = _content_hasher(snapshot.checkpoint_id)
    rows = (
        SnapshotPair.objects.filter(snapshot=snapshot)
        .order_by("ordinal")
        .values_list("ordinal", "pair_id", *_FROZEN_FIELDS, "chosen_ends", "rejected_ends")
        .iterator(chunk_size=FREEZE_BATCH)
    )
    for ordinal, *values in rows:
        _hash_row(digest, ordinal, tuple(values))
    return digest.hexdigest()


def snapshot_freeze(
    *,
    project,
    round: TrainingRound | None = None,
    filters: dict | None = None,
    name: str | None = None,
    created_by=None,
    checkpoint: Checkpoint | None = None,
) -> DatasetSnapshot:
    """Freeze the approved and edited pairs of `round` (or matching `filters`) into an immutable snapshot.

    The pairs' texts are copied in a stable order (query, then pair id) and hashed as they are copied, in one
    transaction that reads them in one statement: later edits to the pairs do not reach the snapshot. The
    same content (same rows, same rendering checkpoint) frozen again returns the existing snapshot. Raises
    ValueError on bad filters, a checkpoint that does not fit, or an empty selection.
    """
    clean, rnd = snapshot_filters_clean(project=project, filters=filters, round=round)
    ckpt = _render_checkpoint(project=project, round=rnd, checkpoint=checkpoint)
    pairs = snapshot_selection(project=project, filters=clean)
    empty = ValueError(f"no approved or edited pairs match {clean} in project {project.name!r}: nothing to freeze")
    if not pairs.exists():
        raise empty
    if name is None:
        name = f"round {rnd.number}" if rnd is not None else f"snapshot {timezone.now():%Y-%m-%d %H:%M:%S}"
    content_hash = None
    try:
        with transaction.atomic():
            # The hash is known only once every row is read, and the rows need the snapshot's id: insert
            # with a unique placeholder, then set the hash (a queryset update: the model refuses saves).
            snapshot = DatasetSnapshot.objects.create(
                project=project,
                round=rnd,
                checkpoint=ckpt,
                name=name,
                filters=clean,
                created_by=created_by,
                content_hash=f"freezing-{uuid.uuid4().hex}",
            )
            digest = _content_hasher(snapshot.checkpoint_id)
            batch: list[SnapshotPair] = []
            count = 0
            for values in pairs.values_list(
                "id",
                *_FROZEN_FIELDS,
                "chosen_node__is_terminal",
                "rejected_node__is_terminal",
                "prefix_ids",
                "chosen_ids",
                "rejected_ids",
            ).iterator(chunk_size=FREEZE_BATCH):
                *values, chosen_terminal, rejected_terminal, prefix_ids, chosen_ids, rejected_ids = values
                # no tree node (an imported or hand-made pair): the fragments are whole answers
                chosen_ends, rejected_ends = chosen_terminal is not False, rejected_terminal is not False
                pair_id, query_id, _, prefix, chosen, rejected, deficiency, gap, status = values
                _hash_row(digest, count, (*values, chosen_ends, rejected_ends))
                batch.append(
                    SnapshotPair(
                        snapshot=snapshot,
                        ordinal=count,
                        pair_id=pair_id,
                        query_id=query_id,
                        prefix=prefix,
                        chosen=chosen,
                        rejected=rejected,
                        deficiency=deficiency,
                        gap=gap,
                        status=status,
                        chosen_ends=chosen_ends,
                        rejected_ends=rejected_ends,
                        prefix_ids=prefix_ids,
                        chosen_ids=chosen_ids,
                        rejected_ids=rejected_ids,
                    )
                )
                count += 1
                if len(batch) >= FREEZE_BATCH:
                    SnapshotPair.objects.bulk_create(batch)
                    batch = []
            SnapshotPair.objects.bulk_create(batch)
            if count == 0:  # everything was un-approved between the check above and the read
                raise empty
            content_hash = digest.hexdigest()
            existing = DatasetSnapshot.objects.filter(project=project, content_hash=content_hash).first()
            if existing is not None:
                raise _AlreadyFrozen(existing)  # rolls back this copy
            DatasetSnapshot.objects.filter(pk=snapshot.pk).update(content_hash=content_hash, pair_count=count)
    except _AlreadyFrozen as already:
        return already.snapshot
    except IntegrityError:
        # A concurrent freeze of the same content committed first: the unique (project, content_hash) says so.
        existing = content_hash and DatasetSnapshot.objects.filter(project=project, content_hash=content_hash).first()
        if not existing:
            raise
        return existing
    snapshot.content_hash, snapshot.pair_count = content_hash, count
    return snapshot


# --- export --------------------------------------------------------------------------------------------


class _Tools:
    """Tool rows by id for the chunks of one export: a project's queries share few tools, so each is read
    (and its schema decoded) once, not once per query offering it; at most `size` are kept between chunks."""

    def __init__(self, size: int = TOOL_CACHE):
        self.size = size
        self.rows: OrderedDict[int, Tool] = OrderedDict()

    def get(self, ids: set[int]) -> dict[int, Tool]:
        """The tools of `ids` (one query for those not kept)."""
        missing = ids - self.rows.keys()
        if missing:
            self.rows.update(Tool.objects.in_bulk(missing))
        found = {pk: self.rows[pk] for pk in ids}
        for pk in ids:
            self.rows.move_to_end(pk)
        while len(self.rows) > self.size:
            self.rows.popitem(last=False)
        return found


class _Query(NamedTuple):
    """What rows and prompts read of a query (`rows`, `apps.training.policy.query_prompt`), without a model
    instance, its related managers and a prefetch per query: those cost more than the query's rows."""

    pk: int
    external_id: str
    messages: list
    tools: tuple

    def ordered_tools(self) -> list[Tool]:
        return list(self.tools)

    def openai_tools(self) -> list[dict]:
        return Query.openai_tools(self)  # the model's own, over these tools


def _queries(ids: set[int], tools: _Tools) -> dict[int, _Query]:
    """The chunk's queries with their tools in prompt order: two queries (three when tools are new)."""
    links: dict[int, list[int]] = {pk: [] for pk in ids}
    for query_id, tool_id in (
        QueryTool.objects.filter(query_id__in=ids).order_by("query_id", "position").values_list("query_id", "tool_id")
    ):
        links[query_id].append(tool_id)
    by_id = tools.get({tool_id for tool_ids in links.values() for tool_id in tool_ids})
    return {
        pk: _Query(pk, external_id, messages, tuple(by_id[t] for t in links[pk]))
        for pk, external_id, messages in Query.objects.filter(pk__in=ids).values_list("id", "external_id", "messages")
    }


def _snapshot_tokenizer(snapshot: DatasetSnapshot):
    if snapshot.checkpoint_id is None:
        raise ValueError(
            f"snapshot #{snapshot.pk} has no checkpoint: trl prompts need a policy's chat template "
            "(openai and sharegpt exports do not)"
        )
    return policy_tokenizer(snapshot.checkpoint)


def snapshot_rows(
    snapshot: DatasetSnapshot,
    fmt: str,
    span: str = "fragment",
    *,
    chunk_size: int = EXPORT_CHUNK,
    complete: bool = False,
    stats: CompletionStats | None = None,
) -> Iterator[dict]:
    """The snapshot's rows in `fmt`, in order, read `chunk_size` at a time (a server-side cursor on
    PostgreSQL) with their queries fetched per chunk: memory stays flat whatever the size. The format is
    checked and the tokenizer loaded (once) before this returns, so errors come before the first row.
    With `complete`, each side that stops mid-answer is completed by its best finished rollout
    (`apps.datasets.completion`; rows that cannot be are left out, counted in `stats`)."""
    tokenizer = _export_tokenizer(snapshot, fmt, span)
    return _rendered(snapshot, fmt, span, tokenizer, chunk_size, _completer(complete, stats))


class _Item(NamedTuple):
    """What a row reads of a frozen item: its fields as a plain tuple (a model instance per row costs more
    than rendering the row). After the snapshot and its id, the fields of `rows.ROW_FIELDS` in its order."""

    snapshot: DatasetSnapshot
    snapshot_id: int
    ordinal: int
    pair_id: int | None
    query_id: int
    prefix: str
    chosen: str
    rejected: str
    deficiency: str
    gap: float
    status: str
    chosen_ends: bool
    rejected_ends: bool
    prefix_ids: list[int] | None
    chosen_ids: list[int] | None
    rejected_ids: list[int] | None
    completed: bool


assert _Item._fields[2:] == ROW_FIELDS
_QUERY_ID = ITEM_FIELDS.index("query_id")


def _export_tokenizer(snapshot: DatasetSnapshot, fmt: str, span: str):
    check_format(fmt, span)
    return _snapshot_tokenizer(snapshot) if fmt == "trl" else None


def _completer(complete: bool, stats: CompletionStats | None):
    """How each chunk's item tuples become row tuples: completed (`complete`), or as they are (not completed)."""
    if not complete:
        return lambda batch: [(*value, False) for value in batch]
    stats = stats if stats is not None else CompletionStats()
    return lambda batch: complete_chunk(batch, stats)


def _items(snapshot, chunk_size, per_query, completer) -> Iterator[tuple[tuple, object]]:
    """(a row's fields in `ROW_FIELDS` order, `per_query(query)`) in order, `chunk_size` items per fetch;
    `per_query` is called once per query and chunk (a query's items are adjacent)."""
    values = snapshot.items.order_by("ordinal").values_list(*ITEM_FIELDS).iterator(chunk_size=chunk_size)
    tools = _Tools()
    for batch in batched(values, chunk_size):
        batch = completer(list(batch))
        queries = _queries({value[_QUERY_ID] for value in batch}, tools)
        made: dict[int, object] = {}
        for value in batch:
            query_id = value[_QUERY_ID]
            found = made.get(query_id)
            if found is None:
                found = made[query_id] = per_query(queries[query_id])
            yield value, found


def _prompt(tokenizer, query) -> tuple[str, list[int]] | tuple[None, None]:
    """The query's prompt rendered by the policy's chat template, and its token ids (None, None without a
    tokenizer: formats other than trl)."""
    if tokenizer is None:
        return None, None
    prompt = query_prompt(tokenizer, query)
    return prompt, tokenizer(prompt, add_special_tokens=False)["input_ids"]


def _rendered(snapshot, fmt, span, tokenizer, chunk_size, completer) -> Iterator[dict]:
    """The rows in order; per query and chunk, the prompt is rendered and the query's fields made once."""

    def per_query(query):
        return query, *_prompt(tokenizer, query), query_fields(fmt, query)

    for value, (query, prompt, prompt_ids, shared) in _items(snapshot, chunk_size, per_query, completer):
        yield render_row(
            fmt,
            _Item(snapshot, snapshot.pk, *value),
            query,
            prompt=prompt,
            span=span,
            shared=shared,
            prompt_ids=prompt_ids,
        )


def trl_rows(snapshot: DatasetSnapshot, span: str = "fragment") -> Iterator[dict]:
    """The trl rows training reads, the same the trl export writes: `{"prompt", "chosen", "rejected",
    "metadata", "prompt_ids", "chosen_ids", "rejected_ids"}`."""
    return snapshot_rows(snapshot, "trl", span)


def snapshot_export(
    snapshot: DatasetSnapshot,
    fmt: str,
    span: str = "fragment",
    *,
    complete: bool = False,
    stats: CompletionStats | None = None,
) -> Iterator[bytes]:
    """The snapshot as JSON Lines, one bytes object per row (UTF-8, `\\n`-terminated); the same bytes on
    every export. ValueError (before anything is yielded) for an unknown format or span, or a trl export
    of a snapshot without a checkpoint. `complete` and `stats` as for `snapshot_rows`."""
    tokenizer = _export_tokenizer(snapshot, fmt, span)
    return _lines(snapshot, fmt, span, tokenizer, _completer(complete, stats))


def _lines(snapshot, fmt, span, tokenizer, completer) -> Iterator[bytes]:
    # Outside a transaction Django declares its PostgreSQL server-side cursor WITH HOLD, and the server then
    # materialises the whole result before the first row (measured: ~0.8 s and the rows' size in temp space per
    # million pairs). A stream does nothing else on its connection: it reads in a transaction of its own, where
    # the cursor is not held (closing the stream early rolls that read back).
    # The lines are written from pre-encoded pieces (`rows.LINES`), the same bytes as encoding each row's dict.
    lines = LINES[fmt](snapshot=snapshot, span=span)
    line = lines.line

    def per_query(query):
        return lines.query_part(query, *_prompt(tokenizer, query))

    own = connection.vendor == "postgresql" and connection.get_autocommit()
    with transaction.atomic() if own else nullcontext():
        for values, part in _items(snapshot, EXPORT_CHUNK, per_query, completer):
            yield line(part, values)


def snapshot_latest(*, project) -> DatasetSnapshot | None:
    """The project's most recently frozen snapshot."""
    return (
        DatasetSnapshot.objects.filter(project=project)
        .select_related("checkpoint")
        .order_by("-created_at", "-pk")
        .first()
    )


# --- files ---------------------------------------------------------------------------------------------


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
            progress=lambda n: SnapshotFile.objects.filter(pk=file.pk).update(rows=n),
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
