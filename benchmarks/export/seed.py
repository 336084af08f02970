"""The export benchmark's data: tools, queries and reviewed pairs by plain SQL on PostgreSQL or bulk_create
elsewhere, the tiny policy whose tokenizer renders trl prompts, and their deletion afterwards."""

from __future__ import annotations

import math
import random
import shutil
import uuid
from pathlib import Path

from django.db import connection, transaction

from apps.catalog.models import Query, QueryTool, Tool
from apps.curation.models import PreferencePair
from apps.datasets.models import DatasetSnapshot, SnapshotPair
from apps.training.models import Checkpoint

CHUNK = 100_000  # rows per INSERT … SELECT
SMALL_EVERY = 10_000  # the pairs of one query in this many pairs are `wrong_type`: the small snapshot the export
# load run downloads (1,000 pairs over 100 queries at 1M pairs, 10 per query)
TOOLS = 8

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
