"""The review benchmark's load run: concurrent reviewers against a real HTTP server, then checked for lost
updates and for dashboard counts that differ from the rows."""

from __future__ import annotations

import http.cookiejar
import json
import queue
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection

from apps.curation.models import ReviewEvent
from apps.curation.stats import review_stats_differences
from apps.projects.models import Membership
from benchmarks.server import percentile, serve

from .seed import EVENT, PAIR

PASSWORD = "bench-review-password"
CHANGING = [a for a in ReviewEvent.Action.values if a not in ("skip", "create", "assign", "release")]


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
