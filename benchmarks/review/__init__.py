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

import os
import uuid

from django.contrib.auth import get_user_model
from django.db import connection

from apps.catalog.models import Query, QueryTool, Tool
from apps.projects.models import Membership, Project
from apps.training.models import TrainingRound

from .load import load_run
from .pages import GOAL_P95_MS, GOAL_QUERIES, REQUESTS_PER_PAGE, explain, measure_pages
from .seed import Seeder, _cleanup

SIZES = (10_000, 100_000, 1_000_000)
SQLITE_MAX_PAIRS = 20_000


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
