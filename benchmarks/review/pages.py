"""Page latency of the review benchmark: focus, bulk and dashboard pages through Django's test Client, with
the SQL queries of each request, and EXPLAIN for the slow ones."""

from __future__ import annotations

import html
import random
import re
import time
import urllib.parse

from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.curation.models import PreferencePair
from benchmarks.server import percentile

REQUESTS_PER_PAGE = 30
PAGE_TIME_BUDGET = 60.0  # seconds per page and size: a very slow page is measured on fewer requests
GOAL_P95_MS, GOAL_QUERIES = 100.0, 15
BULK_FILTERS = {
    "status": "pending",
    "deficiency": "wrong_value",
    "gap_min": "0.05",
    "gap_max": "0.5",
    "sort": "uncertainty",
}


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
