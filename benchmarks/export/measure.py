"""In-process measurements of the export benchmark: each export format's JSON Lines stream and Parquet file
against baselines (a raw cursor read, a naive full load) run in the same process."""

from __future__ import annotations

import json
import time

from django.db.models import Prefetch

from apps.catalog.models import Query, QueryTool
from apps.datasets.models import SnapshotFile, SnapshotPair
from apps.datasets.rows import FORMATS, openai_row
from apps.datasets.services import snapshot_export, snapshot_file_build
from apps.training.policy import policy_tokenizer, query_prompt

from .probes import MB, PeakRSS, _load

GOAL_PAIRS_S, GOAL_RSS_MB = 50_000, 100


class Run:
    """Wall and CPU time (this process only: the database server's work is not in it) and peak RSS growth."""

    def __init__(self, fn):
        with PeakRSS() as rss:
            wall, cpu = time.perf_counter(), time.process_time()
            self.result = fn()
            self.wall, self.cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.rss = rss.growth_mb


def raw_read(snapshot) -> int:
    """Baseline floor: the snapshot's rows read through a server-side cursor, nothing rendered."""
    rows = 0
    for _ in (
        SnapshotPair.objects.filter(snapshot=snapshot)
        .order_by("ordinal")
        .values_list(
            "ordinal",
            "pair_id",
            "query_id",
            "prefix",
            "chosen",
            "rejected",
            "deficiency",
            "gap",
            "status",
            "chosen_ends",
            "rejected_ends",
        )
        .iterator(chunk_size=2000)
    ):
        rows += 1
    return rows


def naive_full_load(snapshot, limit: int) -> tuple[int, int]:
    """Baseline the streaming export replaces: every item (with its query and tools) loaded into a list, one
    json.dumps per row into one body in memory. Rows as the openai export makes them, keys unsorted."""
    tools = Prefetch("query__query_tools", queryset=QueryTool.objects.select_related("tool").order_by("position"))
    items = list(
        SnapshotPair.objects.filter(snapshot=snapshot)
        .select_related("query")
        .prefetch_related(tools)
        .order_by("ordinal")[:limit]
    )
    body = "".join(json.dumps(openai_row(item, item.query), ensure_ascii=False) + "\n" for item in items).encode()
    return len(items), len(body)


def stream(lines) -> tuple[int, int]:
    rows = size = 0
    for line in lines:
        rows += 1
        size += len(line)
    return rows, size


def render_cost(snapshot, sample: int = 2000) -> float:
    """Microseconds per trl prompt render (the policy's chat template over one query's messages and tools)."""
    tokenizer = policy_tokenizer(snapshot.checkpoint)
    tools = Prefetch("query_tools", queryset=QueryTool.objects.select_related("tool").order_by("position"))
    ids = list(
        SnapshotPair.objects.filter(snapshot=snapshot, ordinal__lt=sample * 50)
        .values_list("query_id", flat=True)
        .distinct()[:sample]
    )
    queries = list(Query.objects.filter(pk__in=ids).prefetch_related(tools))
    start = time.process_time()
    for query in queries:
        query_prompt(tokenizer, query)
    return (time.process_time() - start) / max(1, len(queries)) * 1e6


def _size(n_bytes: float) -> str:
    return f"{n_bytes / MB:,.1f} MB" if n_bytes >= MB / 10 else f"{n_bytes / 1024:,.1f} kB"


def _line(label: str, rows: int, n_bytes: int | None, run: Run, raw: float | None, extra: str = "") -> None:
    rate, cpu_rate = rows / run.wall, rows / max(run.cpu, 1e-9)
    ratio = f"{cpu_rate / raw:.2f}×" if raw else "1.00×"
    mb_s = f"{n_bytes / MB / run.wall:>7.1f}" if n_bytes else f"{'':>7}"
    print(f"  {label:<46} {rate:>9,.0f} {cpu_rate:>9,.0f} {mb_s} {run.wall:>7.1f} {run.rss:>7.0f}  {ratio:>6}  {extra}")


def measure(snapshot, small, *, n_queries: int, naive_max: int) -> None:
    n = snapshot.pair_count
    # warm: the tokenizer (and transformers) loaded, the template compiled, pyarrow's Parquet writer loaded — once
    # per process, not per export
    warm = Run(
        lambda: (
            [stream(snapshot_export(small, "trl"))]
            + [
                snapshot_file_build(file_id=SnapshotFile.objects.create(snapshot=small, format=fmt).pk)
                for fmt in FORMATS
            ]
        )
    )
    print(
        f"\nwarm-up (the small snapshot as trl JSON Lines and as Parquet): RSS +{warm.rss:.0f} MB once per process "
        "(transformers, the tokenizer, pyarrow's Parquet writer)"
    )
    print(
        f"\nexport of {n:,} pairs over {n_queries:,} queries ({_load()}); rates in pairs/s of wall time and of "
        f"this process's CPU time; ratio = CPU rate / the raw read's:"
    )
    print(f"  {'what':<46} {'wall/s':>9} {'CPU/s':>9} {'MB/s':>7} {'seconds':>7} {'RSS+MB':>7}  {'ratio':>6}")
    raw = Run(lambda: raw_read(snapshot))
    raw_rate = n / max(raw.cpu, 1e-9)
    _line("baseline: raw cursor read, nothing rendered", raw.result, None, raw, None)
    rates = {}
    for fmt, span in (("openai", "fragment"), ("sharegpt", "fragment"), ("trl", "fragment"), ("trl", "completion")):
        run = Run(lambda: stream(snapshot_export(snapshot, fmt, span)))
        rows, size = run.result
        assert rows == n, (fmt, rows, n)
        rates[(fmt, span)] = run
        goal = (
            "ok"
            if rows / run.wall >= GOAL_PAIRS_S and run.rss < GOAL_RSS_MB
            else ("RSS ok, rate MISSED" if run.rss < GOAL_RSS_MB else "MISSED")
        )
        _line(
            f"snapshot_export {fmt}{' ' + span if fmt == 'trl' else ''} (JSON Lines)",
            rows,
            size,
            run,
            raw_rate,
            f"{_size(size)}; goal {goal}",
        )
    per_render = render_cost(snapshot)
    trl = rates[("trl", "fragment")]
    render_s = n_queries * per_render / 1e6
    print(
        f"  trl prompts: {per_render:,.0f} µs of CPU per render × {n_queries:,} distinct queries = {render_s:.1f} s, "
        f"{render_s / trl.cpu:.0%} of the trl export's CPU time; the rest runs at "
        f"{n / max(1e-9, trl.cpu - render_s):,.0f} pairs per CPU-second"
    )

    print(f"\nParquet files (the datasets.snapshot_parquet task's body, in this process; {_load()}):")
    for fmt in ("openai", "sharegpt", "trl"):
        file = SnapshotFile.objects.create(snapshot=snapshot, format=fmt)  # as snapshot_file_request, sending nothing
        run = Run(lambda: snapshot_file_build(file_id=file.pk))
        file = run.result
        if file.status != SnapshotFile.Status.DONE:
            print(f"  {fmt}: FAILED {file.error}")
            continue
        jsonl = rates.get((fmt, "fragment"))
        ratio = f", {file.bytes / jsonl.result[1]:.3f}× the JSON Lines" if jsonl else ""
        _line(
            f"snapshot_file_build {fmt} (Parquet, zstd)",
            file.rows,
            None,
            run,
            raw_rate,
            f"{_size(file.bytes)}{ratio}; sha256 {file.sha256[:12]}",
        )

    limit = min(n, naive_max)  # last: its freed heap would hide what the streaming exports allocate
    naive = Run(lambda: naive_full_load(snapshot, limit))
    rows, size = naive.result
    openai = rates[("openai", "fragment")]
    _line(
        "baseline: naive full load + json.dumps (openai)",
        rows,
        size,
        naive,
        raw_rate,
        f"{rows:,} rows; the streaming openai export: ×{(n / openai.wall) / (rows / naive.wall):.2f} its wall rate, "
        f"RSS +{openai.rss:.0f} MB against +{naive.rss:,.0f} MB (~{naive.rss / rows * 1e6:,.0f} MB per million)",
    )
