"""Export: JSON Lines streamed in chunks, the same bytes every time, errors before the first byte."""

import json

import pytest

from apps.datasets.rows import FORMATS
from apps.datasets.services import export, snapshot_export, snapshot_freeze, snapshot_rows
from tests.factories import QueryFactory


@pytest.fixture
def snapshot(project, make_pair, round_):
    """Seven pairs over three queries, one in German with non-ASCII text."""
    queries = [QueryFactory(project=project) for _ in range(2)]
    queries.append(
        QueryFactory(
            project=project,
            messages=[{"role": "user", "content": "Wie ist das Wetter in Köln?"}],
            ground_truth=[{"get_weather": {"city": ["Köln"]}}],
        )
    )
    for i in range(7):
        query = queries[i % 3]
        city = "Köln" if query is queries[2] else "Paris"
        make_pair(
            "approved" if i % 2 else "edited",
            round=round_,
            query=query,
            chosen=f"city='{city}')]",
            rejected=f"city='Lyon{i}')]",
        )
    return snapshot_freeze(project=project, round=round_)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_same_bytes_on_every_export(snapshot, fmt):
    first = list(snapshot_export(snapshot, fmt))
    second = list(snapshot_export(type(snapshot).objects.get(pk=snapshot.pk), fmt))
    assert first == second and len(first) == snapshot.pair_count == 7
    for line in first:  # one canonical JSON object per line (keys sorted: the same on SQLite and PostgreSQL)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.dumps(json.loads(line), ensure_ascii=False, sort_keys=True).encode() + b"\n" == line
    data = b"".join(first)
    assert "Köln".encode() in data and b"\\u00f6" not in data


def test_rows_come_in_snapshot_order_across_chunks(snapshot, django_assert_max_num_queries):
    expected = list(snapshot.items.order_by("ordinal").values_list("pair_id", "chosen"))
    # chunks of 2 over 7 rows: 4 chunks, each fetching its queries (+ their tools) once
    with django_assert_max_num_queries(1 + 4 * 2 + 1):
        rows = list(snapshot_rows(snapshot, "trl", chunk_size=2))
    assert [(r["metadata"]["pair_id"], r["chosen"]) for r in rows] == expected
    assert [r["metadata"]["ordinal"] for r in rows] == list(range(7))
    assert rows == list(snapshot_rows(snapshot, "trl"))


def test_a_query_prompt_is_rendered_once_per_chunk(snapshot, monkeypatch):
    calls = []
    real = export.query_prompt
    monkeypatch.setattr(export, "query_prompt", lambda tok, q: calls.append(q.pk) or real(tok, q))
    rows = list(snapshot_rows(snapshot, "trl"))
    assert len(rows) == 7 and len(calls) == 3  # 3 queries, whatever the number of pairs


def test_errors_come_before_the_first_byte(project, snapshot):
    with pytest.raises(ValueError, match="unknown export format 'parquet': expected one of trl, openai, sharegpt"):
        snapshot_export(snapshot, "parquet")  # not iterated: the caller can still answer 400
    with pytest.raises(ValueError, match="unknown span 'all'"):
        snapshot_export(snapshot, "trl", span="all")

    bare = type(snapshot).objects.create(project=project, name="no checkpoint", content_hash="x" * 64)
    bare.items.create(ordinal=0, query=snapshot.items.first().query, chosen="a", rejected="b", status="approved")
    with pytest.raises(ValueError, match=f"snapshot #{bare.pk} has no checkpoint"):
        snapshot_export(bare, "trl")
    assert len(list(snapshot_export(bare, "openai"))) == 1  # openai and sharegpt need no tokenizer
