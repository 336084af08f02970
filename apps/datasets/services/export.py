"""Exports: a snapshot's rows in a training format, as dicts (training, Parquet files) or as JSON Lines bytes
(the stream), read a chunk at a time with their queries and tools fetched per chunk."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import nullcontext
from typing import NamedTuple

from django.db import connection, transaction

from apps.catalog.models import Query, QueryTool, Tool
from apps.training.policy import policy_tokenizer, query_prompt
from itool_web.batching import batched

from ..completion import CompletionStats, complete_chunk
from ..models import DatasetSnapshot
from ..rows import ITEM_FIELDS, LINES, ROW_FIELDS, check_format, query_fields, render_row

EXPORT_CHUNK = 2000  # snapshot rows per fetch while exporting (and queries fetched per batch)
TOOL_CACHE = 2000  # tools kept between an export's chunks


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
