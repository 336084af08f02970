"""The review benchmark's data: a project's pairs grown in chunks (with the events and assignments of the
reviewed ones) by plain SQL on PostgreSQL or bulk_create elsewhere, and deleted again afterwards."""

from __future__ import annotations

import random
import time
import uuid

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection, transaction

from apps.curation.models import (
    AgreementCell,
    AgreementCount,
    PairAssignment,
    PairCount,
    PreferencePair,
    ReviewerCount,
    ReviewEvent,
)
from apps.curation.stats import review_stats_rebuild
from rewards.deficiency import Deficiency

CHUNK = 100_000  # rows per INSERT … SELECT
DEFICIENCIES = [d.value for d in Deficiency if d is not Deficiency.BAD_INPUT]  # '' (none) included

PAIR = PreferencePair._meta.db_table
EVENT = ReviewEvent._meta.db_table
ASSIGNMENT = PairAssignment._meta.db_table
CELL = AgreementCell._meta.db_table
COUNTS = [model._meta.db_table for model in (PairCount, ReviewerCount, AgreementCount)]


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
