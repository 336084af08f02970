"""The export benchmark's load runs over HTTP: the pair list and the export endpoint under concurrent clients
against `benchmarks.server`, with the server's CPU time per request and its memory on a whole download."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request

import psutil

from benchmarks.server import cores, percentile, serve

from .probes import MB, PeakRSS, _load

GOAL_P95_MS = 100.0


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
