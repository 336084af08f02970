"""Snapshot export at scale (issue 7): N reviewed pairs frozen into a snapshot, exported as JSON Lines in each
format (pairs/s, bytes/s, peak RSS growth) against baselines run in the same process, written as Parquet by the
task's service, then the pair list and the export endpoint under concurrent clients on a loopback HTTP server.

Goals: ≥ 50,000 pairs/s and < 100 MB RSS growth exporting 1M pairs; the pair list's p95 < 100 ms under 100
concurrent clients. A client here is a person or script that reads a page, then spends a while with it: each
pauses EXPORT_BENCH_THINK seconds (× 0.5–1.5 at random, so that the clients do not fall into step) between
requests, and the goal is judged on that run. 100 clients that never pause ask for as many requests as the server
can answer — ~1,000/s for a p95 of 100 ms, beyond two cores at a few ms of CPU per request — so that run is a
saturation test: its throughput (and the latency that queueing gives it) is printed for information.

The server is `benchmarks.server`: one process per CPU (EXPORT_BENCH_PROCESSES) on one port (SO_REUSEPORT), each
with a pool of EXPORT_BENCH_WORKERS threads holding a database connection each; the clients are threads of this
process. Each HTTP run reports the server's CPU time per request, which sets its capacity (cores / CPU per request).

Env: EXPORT_BENCH_PAIRS (default 1,000,000; SQLite is capped at 20,000), EXPORT_BENCH_PAIRS_PER_QUERY (default
10: pairs share queries as a tree's pairs do; a trl export renders each distinct query's prompt once, so this
ratio sets its rate), EXPORT_BENCH_NAIVE_MAX (rows the full-load baseline reads, default 200,000: it holds ~8 GB
per million pairs), EXPORT_BENCH_SECONDS (per load run, default 30; 0 skips the HTTP part), EXPORT_BENCH_CLIENTS
(default 100), EXPORT_BENCH_THINK (seconds between a client's requests, default 1.0; 0 skips the paced run),
EXPORT_BENCH_PROCESSES (server processes, default the CPUs this process may use), EXPORT_BENCH_WORKERS (threads per
server process, default 8). The server runs with API_THROTTLE_RATE off: one token's 100 clients would be throttled.
Everything created (a project `bench-export-<random>`, its rows, a user, files) is deleted at the end.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psutil
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Prefetch
from rest_framework.authtoken.models import Token

from apps.catalog.models import Query, QueryTool, Tool
from apps.curation.models import PreferencePair
from apps.datasets.models import DatasetSnapshot, SnapshotFile, SnapshotPair
from apps.datasets.rows import FORMATS, openai_row
from apps.datasets.services import snapshot_export, snapshot_file_build, snapshot_freeze
from apps.projects.models import Membership, Project
from apps.training.models import Checkpoint, TrainingRound
from apps.training.policy import policy_tokenizer, query_prompt
from benchmarks.server import cores, percentile, serve

SQLITE_MAX_PAIRS = 20_000
GOAL_PAIRS_S, GOAL_RSS_MB, GOAL_P95_MS = 50_000, 100, 100.0
CHUNK = 100_000  # rows per INSERT … SELECT
SMALL_EVERY = 10_000  # the pairs of one query in this many pairs are `wrong_type`: the small snapshot the export
# load run downloads (1,000 pairs over 100 queries at 1M pairs, 10 per query)
TOOLS = 8
MB = 1 << 20

PAIR = PreferencePair._meta.db_table
QUERY = Query._meta.db_table
QUERY_TOOL = QueryTool._meta.db_table
ITEM = SnapshotPair._meta.db_table

PG_QUERIES_SQL = f"""
INSERT INTO {QUERY} (project_id, external_id, source, messages, ground_truth, reference_output, sub_answers,
    final_answer, metadata, kind, split, difficulty, difficulty_bucket, content_hash, created_at)
SELECT %(project)s, 'bench-' || i, 'bench',
    CASE WHEN i %% 3 = 0 THEN jsonb_build_array(
             jsonb_build_object('role', 'system', 'content', 'You answer with tool calls.'),
             jsonb_build_object('role', 'user', 'content', 'Wie ist das Wetter in Köln am Tag ' || i || '?'))
         ELSE jsonb_build_array(jsonb_build_object('role', 'user', 'content',
             'What is the weather in ' || (ARRAY['Paris','Berlin','Tokyo','Lima','Oslo'])[1 + i %% 5]
             || ' on day ' || i || ', in celsius?')) END,
    jsonb_build_array(jsonb_build_object('get_weather', jsonb_build_object('city', jsonb_build_array('Paris')))),
    '', '{{}}'::jsonb, '', '{{}}'::jsonb, 'single', 'train', 0.5, 'medium', md5(%(tag)s || i), now()
FROM generate_series(%(start)s, %(stop)s) AS i
"""
PG_QUERY_TOOLS_SQL = f"""
INSERT INTO {QUERY_TOOL} (query_id, tool_id, position)
SELECT q.id, (%(tools)s::bigint[])[1 + (q.id + j) %% array_length(%(tools)s::bigint[], 1)], j
FROM {QUERY} q CROSS JOIN generate_series(0, 1) AS j WHERE q.project_id = %(project)s
"""
# 85% approved, 15% edited (both frozen); one query's pairs in SMALL_EVERY are wrong_type (the small snapshot);
# pairs of a query are adjacent, as a tree's are.
PG_PAIRS_SQL = f"""
INSERT INTO {PAIR} (project_id, round_id, query_id, prefix, chosen, rejected, original_chosen, chosen_value,
    rejected_value, chosen_visits, rejected_visits, gap, deficiency, chosen_verdict, rejected_verdict, status,
    version, flag_note, reviewed_by_id, reviewed_at, dedup_key, created_at, updated_at)
SELECT %(project)s, %(round)s, (%(queries)s::bigint[])[1 + i / %(per_query)s],
    '[{{"name": "get_weather", "arguments": {{"city": "' || (ARRAY['Paris','Berlin','Tokyo','Lima','Oslo'])[1 + i %% 5]
        || '", "unit": ',
    '"celsius", "days": ' || (i %% 7 + 1) || '}}}}]',
    '"kelvin", "days": "' || (i %% 7 + 1) || '"}}}}]',
    CASE WHEN i %% 100 < 15 THEN '"celcius", "days": ' || (i %% 7 + 1) || '}}}}]' ELSE '' END,
    0.9, 0.9 - g, 1 + i %% 40, 1 + i %% 13, g,
    CASE WHEN i %% {SMALL_EVERY} < %(per_query)s THEN 'wrong_type' ELSE 'wrong_value' END,
    '{{"valid": true, "deficiency": ""}}'::jsonb, '{{"valid": false, "deficiency": "wrong_value"}}'::jsonb,
    CASE WHEN i %% 100 < 15 THEN 'edited' ELSE 'approved' END, 2, '', %(user)s, now(),
    md5(%(tag)s::text || i) || md5(i || %(tag)s::text), now(), now()
FROM (SELECT i, 0.1 + 0.8 * random() AS g FROM generate_series(%(start)s, %(stop)s) AS i) AS s
"""


class PeakRSS:
    """Peak resident memory growth of a process (or the sum over several: a server's) while the block runs, sampled
    every 10 ms in a thread (psutil)."""

    def __init__(self, pids: list[int] | None = None):
        self.processes = [psutil.Process(pid) for pid in pids] if pids else [psutil.Process()]

    def rss(self) -> int:
        return sum(process.memory_info().rss for process in self.processes)

    def __enter__(self):
        gc.collect()
        self.start = self.peak = self.rss()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.01):
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / MB


_cpu_times: list[int] = []


def _load() -> str:
    """The load average, and since the last call the CPU time the hypervisor gave elsewhere (steal, which the
    load average does not show: on a shared VM it moves figures from one run to the next)."""
    one, five, _ = os.getloadavg()
    text = f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs"
    try:
        with open("/proc/stat") as stat:
            times = [int(t) for t in stat.readline().split()[1:]]
    except OSError:
        return text
    if _cpu_times:
        delta = [now - before for now, before in zip(times, _cpu_times)]
        busy = sum(delta) - delta[3] - delta[4]  # not idle, not iowait
        total = max(1, sum(delta))
        text += f"; since the last report CPU busy {busy / total:.0%}, stolen {delta[7] / total:.0%}"
    _cpu_times[:] = times
    return text


# --- seeding ---------------------------------------------------------------------------------------------


def _tiny_checkpoint(project, folder: Path) -> Checkpoint:
    """The tiny policy (its tokenizer renders trl prompts), built from a small generated environment."""
    from apps.catalog.environment import EnvironmentConfig, generate_environment
    from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records

    specs = generate_environment(EnvironmentConfig(seed=0, queries=60)).queries
    records = [
        {"messages": q.messages, "tools": [t.as_openai() for t in q.tools], "reference_output": q.reference_output}
        for q in specs
    ]
    build_tiny_model(corpus_from_records(records), folder, TinyModelConfig(size="nano", seed=0))
    return Checkpoint.objects.create(project=project, name="bench-tiny", path=str(folder))


def seed(*, project, round_, user, n_pairs: int, per_query: int, tag: str) -> int:
    """Tools, ⌈n/per_query⌉ queries with two tools each, then n approved/edited pairs; returns the query count."""
    Tool.objects.bulk_create(
        [
            Tool(
                project=project,
                name=f"tool_{k}",
                schema_hash=f"bench-{k}",
                description=f"Bench tool {k}: a forecast.",
                parameters={
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "City name"},
                        "unit": {"type": "string", "enum": ["celsius", "kelvin"]},
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                    },
                    "required": ["city"],
                },
            )
            for k in range(TOOLS)
        ]
    )
    tool_ids = list(Tool.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    n_queries = math.ceil(n_pairs / per_query)
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            for start in range(0, n_queries, CHUNK):
                cursor.execute(
                    PG_QUERIES_SQL,
                    {"project": project.pk, "tag": tag, "start": start, "stop": min(start + CHUNK, n_queries) - 1},
                )
            cursor.execute(PG_QUERY_TOOLS_SQL, {"project": project.pk, "tools": tool_ids})
        query_ids = list(Query.objects.filter(project=project).order_by("id").values_list("id", flat=True))
        with connection.cursor() as cursor:
            for start in range(0, n_pairs, CHUNK):
                with transaction.atomic():
                    cursor.execute(
                        PG_PAIRS_SQL,
                        {
                            "project": project.pk,
                            "round": round_.pk,
                            "queries": query_ids,
                            "per_query": per_query,
                            "user": user.pk,
                            "tag": tag,
                            "start": start,
                            "stop": min(start + CHUNK, n_pairs) - 1,
                        },
                    )
            for table in (QUERY, QUERY_TOOL, PAIR):
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        return n_queries
    rng = random.Random(0)
    Query.objects.bulk_create(
        [
            Query(
                project=project,
                external_id=f"bench-{i}",
                source="bench",
                content_hash=f"{tag}{i}",
                messages=[{"role": "user", "content": f"What is the weather in Paris on day {i}, in celsius?"}],
                ground_truth=[{"get_weather": {"city": ["Paris"]}}],
            )
            for i in range(n_queries)
        ],
        batch_size=2000,
    )
    query_ids = list(Query.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    QueryTool.objects.bulk_create(
        [QueryTool(query_id=q, tool_id=tool_ids[(q + j) % TOOLS], position=j) for q in query_ids for j in range(2)],
        batch_size=2000,
    )
    for lo in range(0, n_pairs, 2000):
        PreferencePair.objects.bulk_create(
            [
                PreferencePair(
                    project=project,
                    round=round_,
                    query_id=query_ids[i // per_query],
                    prefix='[{"name": "get_weather", "arguments": {"city": "Paris", "unit": ',
                    chosen=f'"celsius", "days": {i % 7 + 1}}}}}]',
                    rejected=f'"kelvin", "days": "{i % 7 + 1}"}}}}]',
                    chosen_value=0.9,
                    rejected_value=0.5,
                    gap=0.1 + 0.8 * rng.random(),
                    deficiency="wrong_type" if i % SMALL_EVERY < per_query else "wrong_value",
                    status="edited" if i % 100 < 15 else "approved",
                    version=2,
                    reviewed_by=user,
                    dedup_key=uuid.uuid5(uuid.NAMESPACE_OID, f"{tag}{i}").hex * 2,
                )
                for i in range(lo, min(lo + 2000, n_pairs))
            ]
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return n_queries


# --- in-process measurements ----------------------------------------------------------------------------


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


# --- load over HTTP -------------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.first_byte: list[float] = []
        self.errors = self.requests = self.bytes = 0
        self.codes: dict[int, int] = {}

    def record(self, status: int, ms: float, ttfb_ms: float, size: int) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(ms)
            self.first_byte.append(ttfb_ms)
            self.bytes += size
            self.codes[status] = self.codes.get(status, 0) + 1
            if status != 200:
                self.errors += 1


def _get(url: str, token: str, stats: Stats | None, timeout: float = 120) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    start = time.perf_counter()
    ttfb = 0.0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ttfb = time.perf_counter() - start
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except OSError:
        status, body = 0, b""
    if stats is not None:
        stats.record(
            status, (time.perf_counter() - start) * 1000, (ttfb or time.perf_counter() - start) * 1000, len(body)
        )
    return status, body


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the server's processes have used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def _clients(n: int, seconds: float, work, pids: list[int]) -> tuple[float, float]:
    """Run `work(k, deadline)` in n threads; (seconds it took, server CPU seconds used meanwhile)."""
    deadline = time.perf_counter() + seconds
    start, cpu = time.perf_counter(), _cpu_seconds(pids)
    threads = [threading.Thread(target=work, args=(k, deadline), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 180)
    return time.perf_counter() - start, _cpu_seconds(pids) - cpu


def _report(name: str, stats: Stats, elapsed: float, server_cpu: float, goal: float | None = None) -> None:
    p95 = percentile(stats.latencies, 0.95)
    verdict = (
        "" if goal is None else f"  {'ok' if p95 <= goal and not stats.errors else 'MISSED'} (p95 ≤ {goal:.0f} ms)"
    )
    print(
        f"  {name}: {stats.requests:,} requests in {elapsed:.0f}s ({stats.requests / elapsed:,.1f}/s, "
        f"{stats.bytes / MB / elapsed:,.1f} MB/s); latency p50 {percentile(stats.latencies, 0.5):,.0f} ms, "
        f"p95 {p95:,.0f} ms, p99 {percentile(stats.latencies, 0.99):,.0f} ms; first byte p50 "
        f"{percentile(stats.first_byte, 0.5):,.0f} ms, p95 {percentile(stats.first_byte, 0.95):,.0f} ms; server CPU "
        f"{server_cpu / elapsed:.2f} cores, {server_cpu / max(1, stats.requests) * 1000:,.1f} ms per request; "
        f"errors {stats.errors} {dict(sorted(stats.codes.items()))}" + verdict
    )


def load_runs(
    *, project, snapshot, small, token: str, seconds: float, clients: int, processes: int, threads: int, think: float
) -> None:
    with serve(processes=processes, threads=threads, env={"API_THROTTLE_RATE": ""}) as server:
        base, pids = server.base, server.pids
        print(
            f"\nloopback HTTP: {server.processes} server process{'es' if server.processes > 1 else ''} × "
            f"{server.threads} threads (one DB connection each) on one port (SO_REUSEPORT), {cores()} CPUs; "
            f"{clients} clients in this process, {seconds:.0f}s per run, token auth, throttling off ({_load()})"
        )

        # the pair list: first pages and the pages after them (keyset cursors), both statuses
        first = {s: f"{base}/api/v1/pairs/?project={project.pk}&status={s}" for s in ("approved", "edited")}

        def lister(stats: Stats, pause: float):
            """A client reading pages; between two requests it pauses pause × 0.5–1.5 (random, so that the clients
            do not fall into step), after a random start within the first pause."""

            def work(k, deadline):
                rng = random.Random(k)
                url = first[rng.choice(list(first))]
                if pause:
                    time.sleep(rng.uniform(0, pause))
                while time.perf_counter() < deadline:
                    status, body = _get(url, token, stats)
                    nxt = json.loads(body).get("next") if status == 200 else None
                    url = nxt if nxt and rng.random() < 0.8 else first[rng.choice(list(first))]
                    if pause:
                        time.sleep(max(0.0, min(deadline - time.perf_counter(), pause * rng.uniform(0.5, 1.5))))

            return work

        label = f"GET /api/v1/pairs/?project&status ({snapshot.pair_count:,} pairs in the project)"
        stats = Stats()  # one alone first: the request's own cost, without queueing
        _report(f"{label}, 1 client, no pause", stats, *_clients(1, min(seconds, 10), lister(stats, 0), pids))
        if think > 0:
            stats = Stats()
            _report(
                f"{label}, {clients} clients pausing {think / 2:g}–{think * 1.5:g} s (mean {think:g} s) between "
                f"requests",
                stats,
                *_clients(clients, seconds, lister(stats, think), pids),
                GOAL_P95_MS,
            )
        stats = Stats()
        _report(
            f"{label}, {clients} clients, no pause (saturation: the most the server answers, for information)",
            stats,
            *_clients(clients, seconds, lister(stats, 0), pids),
        )

        # the export endpoint: whole downloads of a small snapshot by every client at once
        stats = Stats()
        url = f"{base}/api/v1/snapshots/{small.pk}/export/?format=openai"

        def exporter(k, deadline):
            while time.perf_counter() < deadline:
                _get(url, token, stats)

        _report(
            f"GET /api/v1/snapshots/{{id}}/export/?format=openai, {small.pair_count:,}-pair snapshot, whole "
            f"body, {clients} clients, no pause",
            stats,
            *_clients(clients, seconds, exporter, pids),
        )

        # the big one over the wire: one client, the server's memory watched (every process warmed first: the
        # tokenizer; the kernel spreads connections, so a few requests reach them all)
        for _ in range(4 * len(pids)):
            _get(f"{base}/api/v1/snapshots/{small.pk}/export/?format=trl", token, None)
        for fmt in ("openai", "trl"):
            stats = Stats()
            with PeakRSS(pids) as rss:
                start = time.perf_counter()
                status, body = _get(
                    f"{base}/api/v1/snapshots/{snapshot.pk}/export/?format={fmt}", token, stats, timeout=3600
                )
                took = time.perf_counter() - start
            rows = body.count(b"\n")
            print(
                f"  one client, the {snapshot.pair_count:,}-pair snapshot as {fmt}: status {status}, {rows:,} rows, "
                f"{len(body) / MB:,.0f} MB in {took:.1f}s = {rows / took:,.0f} pairs/s, first byte after "
                f"{stats.first_byte[0]:,.0f} ms; server RSS +{rss.growth_mb:.0f} MB"
            )
            del body


# --- the benchmark ---------------------------------------------------------------------------------------


def _cleanup(project, user, folder: Path) -> None:
    """Raw deletes for the big tables (the ORM's cascade would load a million rows), then the ORM (which takes the
    snapshots' Parquet files off the disk)."""
    if project.pk:
        snapshots = DatasetSnapshot.objects.filter(project=project)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {ITEM} WHERE snapshot_id IN (SELECT id FROM {DatasetSnapshot._meta.db_table} "
                "WHERE project_id = %s)",
                [project.pk],
            )
        snapshots.delete()  # before the checkpoint they are rendered with (PROTECT)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {PAIR} WHERE project_id = %s", [project.pk])
            cursor.execute(
                f"DELETE FROM {QUERY_TOOL} WHERE query_id IN (SELECT id FROM {QUERY} WHERE project_id = %s)",
                [project.pk],
            )
            cursor.execute(f"DELETE FROM {QUERY} WHERE project_id = %s", [project.pk])
        project.delete()
    if user is not None and user.pk:
        user.delete()
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    target = int(os.environ.get("EXPORT_BENCH_PAIRS", 1_000_000))
    per_query = max(1, int(os.environ.get("EXPORT_BENCH_PAIRS_PER_QUERY", 10)))
    naive_max = int(os.environ.get("EXPORT_BENCH_NAIVE_MAX", 200_000))
    seconds = float(os.environ.get("EXPORT_BENCH_SECONDS", 30))
    clients = int(os.environ.get("EXPORT_BENCH_CLIENTS", 100))
    think = float(os.environ.get("EXPORT_BENCH_THINK", 1.0))
    processes = int(os.environ.get("EXPORT_BENCH_PROCESSES", 0)) or cores()
    threads = int(os.environ.get("EXPORT_BENCH_WORKERS", 8))
    if connection.vendor == "sqlite" and target > SQLITE_MAX_PAIRS:
        print(f"SQLite: pairs capped at {SQLITE_MAX_PAIRS:,} (asked {target:,}); set DATABASE_URL for PostgreSQL")
        target = SQLITE_MAX_PAIRS
    tag = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    project = Project.objects.create(name=f"bench-export-{tag}")
    user = None
    try:
        user = get_user_model().objects.create(username=f"bench-export-{tag}")
        Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
        token = Token.objects.create(user=user).key
        checkpoint = _tiny_checkpoint(project, folder / "tiny")
        round_ = TrainingRound.objects.create(
            project=project, number=1, state=TrainingRound.State.REVIEWING, policy_in=checkpoint
        )
        print(
            f"database: {connection.vendor}; project {project.name}; {target:,} pairs, {per_query} per query; {_load()}"
        )
        start = time.perf_counter()
        n_queries = seed(project=project, round_=round_, user=user, n_pairs=target, per_query=per_query, tag=tag)
        took = time.perf_counter() - start
        print(f"seeded {n_queries:,} queries and {target:,} pairs in {took:.1f}s ({target / took:,.0f} pairs/s)")

        start = time.perf_counter()
        with PeakRSS() as rss:
            snapshot = snapshot_freeze(project=project, round=round_, created_by=user)
        took = time.perf_counter() - start
        print(
            f"froze snapshot #{snapshot.pk}: {snapshot.pair_count:,} pairs in {took:.1f}s "
            f"({snapshot.pair_count / took:,.0f} pairs/s, RSS +{rss.growth_mb:.0f} MB)"
        )
        small = snapshot_freeze(
            project=project, filters={"deficiency": ["wrong_type"]}, checkpoint=checkpoint, name="small"
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM (ANALYZE) {ITEM}")

        measure(snapshot, small, n_queries=n_queries, naive_max=naive_max)
        if seconds > 0 and clients > 0:
            load_runs(
                project=project,
                snapshot=snapshot,
                small=small,
                token=token,
                seconds=seconds,
                clients=clients,
                processes=processes,
                threads=threads,
                think=think,
            )
        print(f"\ndone ({_load()})")
    finally:
        _cleanup(project, user, folder)
