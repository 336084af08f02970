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

import os
import tempfile
import time
import uuid
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from apps.datasets.services import snapshot_freeze
from apps.projects.models import Membership, Project
from apps.training.models import TrainingRound
from benchmarks.server import cores

from .load import load_runs
from .measure import measure
from .probes import PeakRSS, _load
from .seed import ITEM, _cleanup, _tiny_checkpoint, seed

SQLITE_MAX_PAIRS = 20_000


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
