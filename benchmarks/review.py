"""Review pages at scale: page latency and SQL queries per page as pairs grow (10k, 100k, 1M), then a load
run of concurrent reviewers against a real HTTP server, checked for lost updates.

Env: REVIEW_BENCH_PAIRS (default 1,000,000; SQLite is capped at 20,000), REVIEW_BENCH_SECONDS (default 60),
REVIEW_BENCH_REVIEWERS (default 100), REVIEW_BENCH_WORKERS (server threads, default 16: each holds one
database connection, and PostgreSQL allows 100 by default).
Everything created (a project `bench-review-<random>`, its rows, the users, their sessions) is deleted at the end.

The dashboard reads running counts (apps/curation/models.py: PairCount …). The triggers count the pairs and
events the seeding inserts with plain SQL; the seeded decisions get their agreement cells from
`review_stats_rebuild`, timed on its own. After the load run the counts are checked against the rows.
"""

from __future__ import annotations

import html
import http.cookiejar
import json
import os
import queue
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import Query, QueryTool, Tool
from apps.curation.models import (
    AgreementCell,
    AgreementCount,
    PairAssignment,
    PairCount,
    PreferencePair,
    ReviewerCount,
    ReviewEvent,
)
from apps.curation.stats import review_stats_differences, review_stats_rebuild
from apps.projects.models import Membership, Project
from apps.training.models import TrainingRound
from benchmarks.server import percentile, serve
from rewards.deficiency import Deficiency

SIZES = (10_000, 100_000, 1_000_000)
SQLITE_MAX_PAIRS = 20_000
REQUESTS_PER_PAGE = 30
PAGE_TIME_BUDGET = 60.0  # seconds per page and size: a very slow page is measured on fewer requests
GOAL_P95_MS, GOAL_QUERIES = 100.0, 15
CHUNK = 100_000  # rows per INSERT … SELECT
PASSWORD = "bench-review-password"
DEFICIENCIES = [d.value for d in Deficiency if d is not Deficiency.BAD_INPUT]  # '' (none) included
BULK_FILTERS = {
    "status": "pending",
    "deficiency": "wrong_value",
    "gap_min": "0.05",
    "gap_max": "0.5",
    "sort": "uncertainty",
}
CHANGING = [a for a in ReviewEvent.Action.values if a not in ("skip", "create", "assign", "release")]

PAIR = PreferencePair._meta.db_table
EVENT = ReviewEvent._meta.db_table
ASSIGNMENT = PairAssignment._meta.db_table
CELL = AgreementCell._meta.db_table
COUNTS = [model._meta.db_table for model in (PairCount, ReviewerCount, AgreementCount)]


# --- seeding ---------------------------------------------------------------------------------------------

# Status by share: 55% pending, 25% approved, 5% edited, 10% rejected, 5% flagged. Reviewed pairs are at
# version 2 with the one event (and decided assignment) that got them there, so the lost-update invariant
# holds on seeded rows too. Gaps skew small (r3²), as the search's uncertain pairs do.
PG_PAIRS_SQL = f"""
INSERT INTO {PAIR} (project_id, round_id, query_id, prefix, chosen, rejected, original_chosen, chosen_value,
    rejected_value, chosen_visits, rejected_visits, gap, deficiency, chosen_verdict, rejected_verdict, status,
    version, assignee_id, lease_expires_at, flag_note, reviewed_by_id, reviewed_at, dedup_key, created_at,
    updated_at)
SELECT %(project)s, %(round)s, (%(queries)s::bigint[])[1 + i %% array_length(%(queries)s::bigint[], 1)],
    '[{{"name": "get_weather", "arguments": {{"city": "' || (ARRAY['Paris','Berlin','Tokyo','Lima','Oslo'])[1 + i %% 5]
        || '", "unit": ',
    '"celsius", "days": ' || (i %% 7 + 1) || '}}}}]',
    '"kelvin", "days": "' || (i %% 7 + 1) || '"}}}}]',
    CASE WHEN st = 'edited' THEN '"celcius", "days": ' || (i %% 7 + 1) || '}}}}]' ELSE '' END,
    cv, cv - cv * r3 * r3, 1 + (i %% 40), 1 + (i %% 13), cv * r3 * r3, def,
    '{{"valid": true, "deficiency": ""}}'::jsonb,
    jsonb_build_object('valid', false, 'deficiency', def),
    st, CASE WHEN st = 'pending' THEN 1 ELSE 2 END, NULL, NULL,
    CASE WHEN st = 'flagged' THEN 'unit looks wrong for this city' ELSE '' END,
    CASE WHEN st = 'pending' THEN NULL ELSE (%(users)s::bigint[])[1 + i %% array_length(%(users)s::bigint[], 1)] END,
    CASE WHEN st = 'pending' THEN NULL ELSE now() - (i %% 100000) * interval '1 second' END,
    md5(%(tag)s::text || i) || md5(i || %(tag)s::text), now(), now()
FROM (SELECT i, 0.1 + 0.9 * random() AS cv, random() AS r3,
             (%(deficiencies)s::text[])[1 + floor(random() * %(ndef)s)::int] AS def,
             CASE WHEN r < 0.55 THEN 'pending' WHEN r < 0.80 THEN 'approved' WHEN r < 0.85 THEN 'edited'
                  WHEN r < 0.95 THEN 'rejected' ELSE 'flagged' END AS st
      FROM (SELECT i, random() AS r FROM generate_series(%(start)s, %(stop)s) AS i) AS g) AS s
"""
PG_EVENTS_SQL = f"""
INSERT INTO {EVENT} (pair_id, user_id, action, version, before, after, note, created_at)
SELECT id, reviewed_by_id,
       CASE status WHEN 'approved' THEN 'approve' WHEN 'edited' THEN 'edit' WHEN 'rejected' THEN 'reject'
                   ELSE 'flag' END,
       2, jsonb_build_object('status', 'pending'), jsonb_build_object('status', status), flag_note, reviewed_at
FROM {PAIR} WHERE project_id = %(project)s AND id > %(after)s AND status <> 'pending'
"""
PG_ASSIGNMENTS_SQL = f"""
INSERT INTO {ASSIGNMENT} (pair_id, user_id, leased_until, decision, decided_at, created_at)
SELECT id, reviewed_by_id, reviewed_at,
       CASE status WHEN 'approved' THEN 'approve' WHEN 'edited' THEN 'edit' WHEN 'rejected' THEN 'reject'
                   ELSE 'flag' END,
       reviewed_at, reviewed_at
FROM {PAIR} WHERE project_id = %(project)s AND id > %(after)s AND status <> 'pending'
"""

_STATUS_ACTION = {"approved": "approve", "edited": "edit", "rejected": "reject", "flagged": "flag"}


class Seeder:
    def __init__(self, *, project, round_, query_ids, user_ids, tag):
        self.project, self.round, self.query_ids, self.user_ids, self.tag = project, round_, query_ids, user_ids, tag
        self.count = 0

    def grow(self, target: int) -> tuple[int, float, float, list[str]]:
        """Add pairs (and the events and assignments of the reviewed ones) up to `target`, then rebuild the
        counts; (rows, seconds, of which rebuilding, what the rebuild found wrong in the counts)."""
        start, before = time.perf_counter(), self.count
        while self.count < target:
            n = min(CHUNK, target - self.count)
            after = (
                PreferencePair.objects.filter(project=self.project).order_by("-id").values_list("id", flat=True).first()
                or 0
            )
            if connection.vendor == "postgresql":
                self._grow_pg(n, after)
            else:
                self._grow_python(n)
            self.count += n
        rebuild_start = time.perf_counter()
        wrong = review_stats_rebuild(project_ids=[self.project.pk])[self.project.pk]
        rebuild = time.perf_counter() - rebuild_start
        with connection.cursor() as cursor:  # what autovacuum would do after a bulk load
            if connection.vendor == "postgresql":
                for table in (PAIR, EVENT, ASSIGNMENT, CELL, *COUNTS):
                    cursor.execute(f"VACUUM (ANALYZE) {table}")
            else:
                cursor.execute("ANALYZE")
        return self.count - before, time.perf_counter() - start, rebuild, wrong

    def _grow_pg(self, n: int, after: int) -> None:
        params = {
            "project": self.project.pk,
            "round": self.round.pk,
            "queries": self.query_ids,
            "users": self.user_ids,
            "tag": self.tag,
            "deficiencies": DEFICIENCIES,
            "ndef": len(DEFICIENCIES),
            "start": self.count,
            "stop": self.count + n - 1,
            "after": after,
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PG_PAIRS_SQL, params)
            cursor.execute(PG_EVENTS_SQL, params)
            cursor.execute(PG_ASSIGNMENTS_SQL, params)

    def _grow_python(self, n: int) -> None:
        rng = random.Random(self.count)
        for lo in range(self.count, self.count + n, 2000):
            pairs = []
            for i in range(lo, min(lo + 2000, self.count + n)):
                r, cv, r3 = rng.random(), 0.1 + 0.9 * rng.random(), rng.random()
                status = (
                    "pending"
                    if r < 0.55
                    else "approved"
                    if r < 0.80
                    else "edited"
                    if r < 0.85
                    else "rejected"
                    if r < 0.95
                    else "flagged"
                )
                deficiency = rng.choice(DEFICIENCIES)
                reviewed = status != "pending"
                pairs.append(
                    PreferencePair(
                        project=self.project,
                        round=self.round,
                        query_id=self.query_ids[i % len(self.query_ids)],
                        prefix=f'[{{"name": "get_weather", "arguments": {{"city": "Paris{i % 5}", "unit": ',
                        chosen=f'"celsius", "days": {i % 7 + 1}}}}}]',
                        rejected=f'"kelvin", "days": "{i % 7 + 1}"}}}}]',
                        chosen_value=cv,
                        rejected_value=cv - cv * r3 * r3,
                        gap=cv * r3 * r3,
                        deficiency=deficiency,
                        chosen_visits=1 + i % 40,
                        rejected_visits=1 + i % 13,
                        chosen_verdict={"valid": True, "deficiency": ""},
                        rejected_verdict={"valid": False, "deficiency": deficiency},
                        status=status,
                        version=2 if reviewed else 1,
                        reviewed_by_id=self.user_ids[i % len(self.user_ids)] if reviewed else None,
                        dedup_key=uuid.uuid5(uuid.NAMESPACE_OID, f"{self.tag}{i}").hex * 2,
                    )
                )
            with transaction.atomic():
                PreferencePair.objects.bulk_create(pairs)
                done = [p for p in pairs if p.status != "pending"]
                ReviewEvent.objects.bulk_create(
                    ReviewEvent(
                        pair_id=p.pk,
                        user_id=p.reviewed_by_id,
                        action=_STATUS_ACTION[p.status],
                        version=2,
                        before={"status": "pending"},
                        after={"status": p.status},
                    )
                    for p in done
                )
                PairAssignment.objects.bulk_create(
                    PairAssignment(
                        pair_id=p.pk,
                        user_id=p.reviewed_by_id,
                        leased_until=p.created_at,
                        decision=_STATUS_ACTION[p.status],
                        decided_at=p.created_at,
                    )
                    for p in done
                )


# --- page latency ----------------------------------------------------------------------------------------


NEXT_PAGE = re.compile(r'<a href="([^"]+)" rel="next">')


def _bulk_pages(client, base: str, n: int) -> list[str]:
    """The URLs of the bulk view's first n pages with BULK_FILTERS, by following its `next` links."""
    urls = [f"{base}/pairs/?{urllib.parse.urlencode(BULK_FILTERS)}"]
    while len(urls) < n:
        found = NEXT_PAGE.search(client.get(urls[-1]).content.decode())
        if not found:
            break
        urls.append(f"{base}/pairs/" + html.unescape(found.group(1)))
    return urls


def measure_pages(*, project, annotator, reviewer, size: int, sessions: list[str]) -> dict:
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(annotator)
    sessions.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    as_reviewer = Client(SERVER_NAME="127.0.0.1")
    as_reviewer.force_login(reviewer)
    sessions.append(as_reviewer.cookies[settings.SESSION_COOKIE_NAME].value)
    pending = list(
        PreferencePair.objects.filter(project=project, status="pending")
        .order_by("?" if size <= 100_000 else "id")
        .values_list("id", flat=True)[: REQUESTS_PER_PAGE * 50]
    )
    pending = random.Random(size).sample(pending, min(REQUESTS_PER_PAGE, len(pending)))
    base = f"/projects/{project.pk}"
    bulk = _bulk_pages(client, base, 3)
    pages = {
        "focus": (client, lambda k: f"{base}/pairs/{pending[k % len(pending)]}/"),
        "bulk": (client, lambda k: bulk[k % len(bulk)]),
        "dashboard": (client, lambda k: f"{base}/"),
        "dashboard (reviewer)": (as_reviewer, lambda k: f"{base}/"),
    }
    out = {}
    for name, (client, url_for) in pages.items():
        client.get(url_for(0))  # warm: templates, plan caches
        times, queries, slowest = [], [], None
        budget = time.perf_counter() + PAGE_TIME_BUDGET
        for k in range(REQUESTS_PER_PAGE):
            with CaptureQueriesContext(connection) as ctx:
                start = time.perf_counter()
                response = client.get(url_for(k))
                elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"{name} page answered {response.status_code}: {url_for(k)}")
            times.append(elapsed * 1000)
            queries.append(len(ctx.captured_queries))
            if slowest is None or elapsed * 1000 > slowest[0]:
                slowest = (elapsed * 1000, list(ctx.captured_queries))
            if time.perf_counter() > budget and k >= 4:
                break
        out[name] = {
            "p50": percentile(times, 0.5),
            "p95": percentile(times, 0.95),
            "queries": max(queries),
            "n": len(times),
            "slowest": slowest[1],
            "sql_ms": sum(float(q["time"]) for q in slowest[1]) * 1000,
            "total_ms": slowest[0],
        }
    return out


def explain(sql: str) -> list[str]:
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            return [str(row) for row in cursor.fetchall()]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return [row[0] for row in cursor.fetchall()]


# --- load run --------------------------------------------------------------------------------------------


class Reviewer:
    """One simulated person: a cookie jar, a session, and the loop GET next pair → POST approve/reject."""

    VERSION = re.compile(r'<small class="muted">version (\d+)</small>')
    PAIR_URL = re.compile(r"/pairs/(\d+)/")

    def __init__(self, base: str, username: str, stats: LoadStats):
        self.base, self.username, self.stats = base, username, stats
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "")

    def request(
        self, path: str, data: dict | None = None, *, timed: bool = True, json_: bool = False, timeout: float = 30
    ):
        """(status, body, final url); connection errors count as errors and give status 0."""
        headers = {"Accept": "application/json"} if json_ else {}
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        if data is not None:
            headers["X-CSRFToken"] = self.cookie("csrftoken")
        req = urllib.request.Request(self.base + path if path.startswith("/") else path, data=body, headers=headers)
        start = time.perf_counter()
        try:
            with self.opener.open(req, timeout=timeout) as response:
                status, text, url = response.status, response.read().decode(), response.geturl()
        except urllib.error.HTTPError as error:
            status, text, url = error.code, error.read().decode(errors="replace"), error.geturl()
        except (OSError, urllib.error.URLError):
            status, text, url = 0, "", ""
        if timed:
            self.stats.record(status, (time.perf_counter() - start) * 1000)
        return status, text, url

    def login(self, gate: threading.Semaphore) -> bool:
        """The login form (CSRF token from the page), a few at a time: each costs the server a password hash."""
        with gate:
            for _ in range(2):
                status, page, _ = self.request("/accounts/login/", timed=False, timeout=120)
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
                if status == 200 and token:
                    self.request(
                        "/accounts/login/",
                        {"username": self.username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
                        timed=False,
                        timeout=120,
                    )
                if self.cookie(settings.SESSION_COOKIE_NAME):
                    return True
        return False

    def post_action(self, project_id: int, pair_id: int, version: int, action: str):
        status, text, _ = self.request(
            f"/projects/{project_id}/pairs/{pair_id}/{action}/", {"version": version}, json_=True
        )
        if status == 200:
            try:
                answer = json.loads(text)
            except ValueError:  # not JSON: logged out, redirected to the login page
                self.stats.add("errors")
                return None
            self.stats.write_ok(pair_id)
            return answer.get("next_url")
        if status == 409:
            self.stats.add("conflicts")
        return None

    def run(self, project_id: int, deadline: float, races: queue.Queue, race_share: float, seed: int) -> None:
        rng = random.Random(seed)
        next_path = f"/projects/{project_id}/pairs/next/"
        url = next_path
        while time.perf_counter() < deadline:
            try:  # someone offered a race: hit their pair at the same version, at the same moment
                pair_id, version, barrier = races.get_nowait()
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
                self.post_action(project_id, pair_id, version, "approve")
                self.stats.add("races")
            except queue.Empty:
                pass
            status, page, final = self.request(url)
            found, pair = self.VERSION.search(page), self.PAIR_URL.search(final or "")
            if status != 200 or not found or not pair:
                url = next_path
                if status == 200:  # the queue is empty
                    time.sleep(0.2)
                continue
            pair_id, version = int(pair.group(1)), int(found.group(1))
            barrier = None
            if rng.random() < race_share:
                barrier = threading.Barrier(2, timeout=1.0)
                races.put((pair_id, version, barrier))
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            action = "approve" if rng.random() < 0.8 else "reject"
            url = self.post_action(project_id, pair_id, version, action) or next_path


class LoadStats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.counts = {"requests": 0, "errors": 0, "conflicts": 0, "writes": 0, "races": 0}
        self.written: dict[int, int] = {}

    def record(self, status: int, ms: float) -> None:
        with self.lock:
            self.counts["requests"] += 1
            self.latencies.append(ms)
            if status == 0 or status >= 500:
                self.counts["errors"] += 1

    def add(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def write_ok(self, pair_id: int) -> None:
        with self.lock:
            self.counts["writes"] += 1
            self.written[pair_id] = self.written.get(pair_id, 0) + 1


def load_run(*, project, seconds: float, n_reviewers: int, workers: int, created_users: list, sessions: list) -> None:
    User = get_user_model()
    tag = project.name.rsplit("-", 1)[-1]
    password = make_password(PASSWORD)  # one hash for all: hashing 100 times would take a minute
    users = User.objects.bulk_create(
        [User(username=f"bench-rev-{tag}-{k}", password=password) for k in range(n_reviewers)]
    )
    users = list(User.objects.filter(username__startswith=f"bench-rev-{tag}-"))
    created_users.extend(u.pk for u in users)
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Membership.Role.ANNOTATOR) for u in users])
    event_mark = ReviewEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    stats = LoadStats()
    with serve(processes=1, threads=workers) as server:
        reviewers = [Reviewer(server.base, u.username, stats) for u in users]
        start = time.perf_counter()
        gate = threading.Semaphore(4)
        logged_in = _in_threads([(lambda r=r: r.login(gate)) for r in reviewers], timeout=600)
        sessions.extend(r.cookie(settings.SESSION_COOKIE_NAME) for r in reviewers)
        reviewers = [r for r, ok in zip(reviewers, logged_in) if ok]
        print(
            f"  {len(reviewers)}/{len(users)} reviewers logged in through /accounts/login/ "
            f"in {time.perf_counter() - start:.1f}s; server: {workers} worker threads (one DB connection each)"
        )
        races: queue.Queue = queue.Queue()
        start = time.perf_counter()
        deadline = start + seconds
        _in_threads(
            [(lambda r=r, k=k: r.run(project.pk, deadline, races, 0.05, k)) for k, r in enumerate(reviewers)],
            timeout=seconds + 60,
        )
        elapsed = time.perf_counter() - start

    c = stats.counts
    print(
        f"  {elapsed:.0f}s, {len(reviewers)} reviewers: {c['requests']:,} requests, "
        f"{c['requests'] / elapsed:,.1f} req/s; "
        f"latency p50 {percentile(stats.latencies, 0.5):.0f} ms, p95 {percentile(stats.latencies, 0.95):.0f} ms, "
        f"p99 {percentile(stats.latencies, 0.99):.0f} ms"
    )
    print(
        f"  writes ok {c['writes']:,}; 409 conflicts {c['conflicts']:,}; races {c['races']:,}; "
        f"errors (5xx, connection) {c['errors']:,}"
    )

    # 0 lost updates: every pair's version is 1 + the events that changed it; every successful write made one
    # event; no two events claim the same version of a pair; no pair was written twice at one version.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*) FROM {PAIR} p LEFT JOIN (
                SELECT pair_id, count(*) AS n FROM {EVENT} WHERE action IN ({", ".join(["%s"] * len(CHANGING))})
                GROUP BY pair_id) e ON e.pair_id = p.id
            WHERE p.project_id = %s AND p.version <> 1 + coalesce(e.n, 0)""",
            [*CHANGING, project.pk],
        )
        version_mismatch = cursor.fetchone()[0]
        cursor.execute(
            f"""SELECT count(*) FROM (SELECT 1 FROM {EVENT} e JOIN {PAIR} p ON p.id = e.pair_id
                           WHERE p.project_id = %s AND e.action <> 'skip'
                           GROUP BY e.pair_id, e.version HAVING count(*) > 1) d""",
            [project.pk],
        )
        duplicate_versions = cursor.fetchone()[0]
    run_events = ReviewEvent.objects.filter(
        id__gt=event_mark, pair__project=project, user_id__in=created_users, action__in=("approve", "reject")
    ).count()
    lost = version_mismatch + duplicate_versions + abs(run_events - c["writes"])
    wrong = review_stats_differences(project_id=project.pk)
    print(
        f"  dashboard counts (pairs by status, who reviewed what, agreement) vs a recount of the rows after "
        f"the run: {len(wrong)} differ" + "".join(f"\n    {line}" for line in wrong[:10])
    )
    print(
        f"  lost updates: {lost} (pairs whose version ≠ 1 + their events: {version_mismatch}; "
        f"events sharing a pair version: {duplicate_versions}; successful writes {c['writes']:,} vs "
        f"events recorded {run_events:,})"
    )


def _in_threads(functions, *, timeout: float) -> list:
    results = [None] * len(functions)

    def call(k, fn):
        results[k] = fn()

    threads = [threading.Thread(target=call, args=(k, fn), daemon=True) for k, fn in enumerate(functions)]
    for t in threads:
        t.start()
    deadline = time.perf_counter() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()))
    if any(t.is_alive() for t in threads):
        print(f"  warning: {sum(t.is_alive() for t in threads)} threads still running after {timeout:.0f}s")
    return results


# --- the benchmark ---------------------------------------------------------------------------------------


def _cleanup(project, user_ids: list[int], sessions: list[str]) -> None:
    """Raw deletes for the big tables (the ORM's cascade would load a million rows), then the ORM for the rest."""
    if project.pk:
        with connection.cursor() as cursor:
            for table in (EVENT, ASSIGNMENT, CELL):
                cursor.execute(
                    f"DELETE FROM {table} WHERE pair_id IN (SELECT id FROM {PAIR} WHERE project_id = %s)", [project.pk]
                )
            cursor.execute(f"DELETE FROM {PAIR} WHERE project_id = %s", [project.pk])
            for table in COUNTS:  # plain ids, no cascade
                cursor.execute(f"DELETE FROM {table} WHERE project_id = %s", [project.pk])
        project.delete()
    if user_ids:
        ReviewEvent.objects.filter(user_id__in=user_ids).delete()
        get_user_model().objects.filter(pk__in=user_ids).delete()
    Session.objects.filter(session_key__in=[s for s in sessions if s]).delete()
    # a login the server completed after the client gave up leaves a session the client never saw
    ids = {str(pk) for pk in user_ids}
    stray = [s.pk for s in Session.objects.iterator() if s.get_decoded().get("_auth_user_id") in ids]
    Session.objects.filter(pk__in=stray).delete()


def main() -> None:
    target = int(os.environ.get("REVIEW_BENCH_PAIRS", 1_000_000))
    seconds = float(os.environ.get("REVIEW_BENCH_SECONDS", 60))
    n_reviewers = int(os.environ.get("REVIEW_BENCH_REVIEWERS", 100))
    workers = int(os.environ.get("REVIEW_BENCH_WORKERS", 16))
    if connection.vendor == "sqlite" and target > SQLITE_MAX_PAIRS:
        print(f"SQLite: pairs capped at {SQLITE_MAX_PAIRS:,} (asked {target:,}); set DATABASE_URL for PostgreSQL")
        target = SQLITE_MAX_PAIRS
    sizes = [s for s in SIZES if s < target] + [target]
    tag = uuid.uuid4().hex[:8]
    User = get_user_model()
    project = Project.objects.create(name=f"bench-review-{tag}", guidelines="Approve when the chosen call is right.")
    user_ids: list[int] = []
    sessions: list[str] = []
    try:
        seed_users = User.objects.bulk_create([User(username=f"bench-ann-{tag}-{k}") for k in range(3)])
        seed_users = list(User.objects.filter(username__startswith=f"bench-ann-{tag}-").order_by("id"))
        user_ids.extend(u.pk for u in seed_users)
        annotator, reviewer = seed_users[0], seed_users[2]
        Membership.objects.bulk_create(
            [Membership(project=project, user=u, role=Membership.Role.ANNOTATOR) for u in seed_users[:2]]
            + [Membership(project=project, user=reviewer, role=Membership.Role.REVIEWER)]
        )
        round_ = TrainingRound.objects.create(project=project, number=1, state=TrainingRound.State.REVIEWING)
        tools = Tool.objects.bulk_create(
            [
                Tool(
                    project=project,
                    name=name,
                    schema_hash=name,
                    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                )
                for name in ("get_weather", "get_forecast", "convert_units", "search_flights")
            ]
        )
        queries = Query.objects.bulk_create(
            [
                Query(
                    project=project,
                    external_id=f"q{k}",
                    source="bench",
                    content_hash=str(k),
                    messages=[{"role": "user", "content": f"Weather in city {k}?"}],
                    ground_truth=[{"get_weather": {"city": [f"city {k}"]}}],
                )
                for k in range(20)
            ]
        )
        queries = list(Query.objects.filter(project=project).order_by("id"))
        tools = list(Tool.objects.filter(project=project).order_by("id"))
        QueryTool.objects.bulk_create(
            [
                QueryTool(query=q, tool=tools[(k + j) % len(tools)], position=j)
                for k, q in enumerate(queries)
                for j in range(2)
            ]
        )
        seeder = Seeder(
            project=project,
            round_=round_,
            query_ids=[q.pk for q in queries],
            user_ids=[u.pk for u in seed_users],
            tag=tag,
        )

        print(f"database: {connection.vendor}; project {project.name}; pairs up to {target:,}")
        results: dict[int, dict] = {}
        for size in sizes:
            rows, took, rebuild, wrong = seeder.grow(size)
            counted = not any(line.startswith(("pairs", "reviewers")) for line in wrong)
            print(
                f"seeded {rows:,} pairs (+ events and assignments of the ~45% reviewed) in {took:.1f}s: "
                f"{rows / took:,.0f} pairs/s (incl. VACUUM ANALYZE and {rebuild:.1f}s rebuilding the counts: "
                f"{len(wrong)} counts filled in; pair and event counts kept by the triggers during the load "
                f"{'matched the rows' if counted else 'DID NOT match the rows'}); now {size:,}"
            )
            results[size] = measure_pages(
                project=project, annotator=annotator, reviewer=reviewer, size=size, sessions=sessions
            )

        print(
            f"\npage latency (Django test Client, logged in as an annotator — the reviewer's dashboard also "
            f"counts the pairs awaiting adjudication; {REQUESTS_PER_PAGE} requests per cell unless slow):"
        )
        print(f"  {'page':<20} {'pairs':>10} {'p50 ms':>9} {'p95 ms':>9} {'queries':>8} {'n':>4}  goals")
        for name in ("focus", "bulk", "dashboard", "dashboard (reviewer)"):
            for size in sizes:
                r = results[size][name]
                ok = "ok" if r["p95"] <= GOAL_P95_MS and r["queries"] <= GOAL_QUERIES else "MISSED"
                print(
                    f"  {name:<20} {size:>10,} {r['p50']:>9.1f} {r['p95']:>9.1f} {r['queries']:>8} {r['n']:>4}  "
                    f"{ok} (p95 ≤ {GOAL_P95_MS:.0f} ms: {'yes' if r['p95'] <= GOAL_P95_MS else 'no'}, "
                    f"≤ {GOAL_QUERIES} queries: {'yes' if r['queries'] <= GOAL_QUERIES else 'no'})"
                )
            first, last = results[sizes[0]][name], results[sizes[-1]][name]
            flat = last["p95"] <= max(2 * first["p95"], first["p95"] + 20) and last["queries"] == first["queries"]
            print(
                f"  {name:<20} flat as pairs grow ({sizes[0]:,} → {sizes[-1]:,}): {'yes' if flat else 'no'} "
                f"(p95 ×{last['p95'] / first['p95']:.1f}, queries {first['queries']} → {last['queries']})"
            )

        largest = results[sizes[-1]]
        for name, r in largest.items():
            if r["p95"] <= GOAL_P95_MS:
                continue
            top = sorted(r["slowest"], key=lambda q: -float(q["time"]))[:2]
            print(
                f"\n{name} at {sizes[-1]:,} pairs: slowest request {r['total_ms']:.0f} ms, of which SQL "
                f"{r['sql_ms']:.0f} ms in {len(r['slowest'])} queries (the rest is Python and templates):"
            )
            for q in r["slowest"]:
                print(f"  {float(q['time']) * 1000:7.1f} ms  {len(q['sql']):>9,} chars  {q['sql'][:150]}")
            for q in top:
                print(f"EXPLAIN ANALYZE of the {float(q['time']) * 1000:.0f} ms query ({q['sql'][:100]}…):")
                for line in explain(q["sql"]):
                    print(f"    {line[:200]}")

        if seconds > 0 and n_reviewers > 0:
            print(f"\nload run: {n_reviewers} reviewers, {seconds:.0f}s, loopback HTTP, {sizes[-1]:,} pairs")
            load_run(
                project=project,
                seconds=seconds,
                n_reviewers=n_reviewers,
                workers=workers,
                created_users=user_ids,
                sessions=sessions,
            )
    finally:
        _cleanup(project, user_ids, sessions)
