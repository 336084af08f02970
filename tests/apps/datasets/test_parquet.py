"""Parquet snapshot files: written by the Celery task in row groups, read back (by pyarrow and by
`datasets.load_dataset`) as the JSON Lines rows; asked for idempotently; a failure is recorded with its reason
and leaves no file behind."""

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.urls import reverse
from django.utils import timezone

from apps.datasets import parquet
from apps.datasets.models import SnapshotFile
from apps.datasets.parquet import read_rows, write_parquet
from apps.datasets.rows import FORMATS, openai_messages
from apps.datasets.services import files as snapshot_files
from apps.datasets.services import snapshot_export, snapshot_file_build, snapshot_file_request, snapshot_freeze
from tests.factories import CheckpointFactory, QueryFactory, ToolFactory, UserFactory

MULTI_TURN = [
    {"role": "system", "content": "You answer with tool calls."},
    {"role": "user", "content": "Wie ist das Wetter in Köln, und dann in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Köln"}}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21.5, "sky": "bewölkt"}'},
]


@pytest.fixture
def snapshot(project, make_pair, round_):
    """Eight pairs over three queries: one multi-turn with a call and its result, with a tool whose schema has
    a number default, one in German; one frozen pair deleted since (its pair_id reads as null)."""
    thermo = ToolFactory(
        project=project,
        name="get_temperature",
        schema_hash="hash-temp",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}, "threshold": {"type": "number", "default": 0.25}},
            "required": ["city"],
        },
    )
    queries = [
        QueryFactory(project=project, tools=[ToolFactory(project=project), thermo], messages=MULTI_TURN),
        QueryFactory(project=project),
        QueryFactory(
            project=project,
            messages=[{"role": "user", "content": "Wetter in Köln?"}],
            ground_truth=[{"get_weather": {"city": ["Köln"]}}],
        ),
    ]
    pairs = [
        make_pair(
            "approved" if i % 3 else "edited",
            round=round_,
            query=queries[i % 3],
            chosen=f"city='Köln{i}')]",
            rejected=f"city='Lyon{i}')]",
            gap=0.1 + i / 7,
        )
        for i in range(8)
    ]
    frozen = snapshot_freeze(project=project, round=round_)
    pairs[0].delete()
    return frozen


def jsonl_rows(snapshot, fmt, span="fragment") -> list[dict]:
    return [json.loads(line) for line in snapshot_export(snapshot, fmt, span)]


def build(snapshot, fmt, span="fragment", django_capture_on_commit_callbacks=None) -> SnapshotFile:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        file = snapshot_file_request(snapshot=snapshot, fmt=fmt, span=span)
    assert len(callbacks) == 1  # the task, sent once the request's transaction committed
    file.refresh_from_db()
    return file


@pytest.mark.parametrize(
    "fmt, span", [("trl", "fragment"), ("trl", "completion"), ("openai", "fragment"), ("sharegpt", "fragment")]
)
def test_the_task_writes_a_parquet_file_that_reads_back_as_the_json_lines_rows(
    snapshot, eager, monkeypatch, tmp_path, django_capture_on_commit_callbacks, fmt, span
):
    monkeypatch.setattr(parquet, "ROW_GROUP", 3)  # 8 rows: row groups of 3, 3 and 2
    file = build(snapshot, fmt, span, django_capture_on_commit_callbacks)
    assert file.status == "done" and not file.error, file.error
    path = Path(file.file.path)
    data = path.read_bytes()
    assert file.rows == snapshot.pair_count == 8 and file.bytes == len(data) == path.stat().st_size
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.file.name == f"snapshots/{snapshot.pk}/{file.filename}"
    assert file.finished_at is not None and file.started_at is not None
    assert os.listdir(path.parent) == [path.name]  # the temporary file was renamed, nothing left beside it
    assert pq.ParquetFile(path).metadata.num_row_groups == 3

    expected = jsonl_rows(snapshot, fmt, span)
    assert list(read_rows(path)) == expected  # pyarrow, JSON columns decoded exactly

    import datasets

    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert [dict(row) for row in loaded] == expected  # the same dicts, nested values and all
    if fmt == "trl":
        assert loaded.column_names == [
            "prompt",
            "chosen",
            "rejected",
            "metadata",
            "prompt_ids",
            "chosen_ids",
            "rejected_ids",
        ]
        assert expected[0]["metadata"]["pair_id"] is None and "Köln" in loaded[1]["chosen"]
    if fmt == "openai":
        assert loaded[0]["input"]["messages"] == openai_messages(MULTI_TURN)
        assert loaded[0]["input"]["tools"][1]["function"]["parameters"]["properties"]["threshold"]["default"] == 0.25


def test_plain_pyarrow_sees_typed_columns_and_json_text(snapshot, media):
    trl, openai = (snapshot_file_request(snapshot=snapshot, fmt=fmt) for fmt in ("trl", "openai"))
    trl, openai = (snapshot_file_build(file_id=f.pk) for f in (trl, openai))
    table = pq.read_table(trl.file.path)
    assert str(table.schema.field("metadata").type.field("gap").type) == "double"
    assert [m["gap"] for m in table.column("metadata").to_pylist()] == [
        r["metadata"]["gap"] for r in jsonl_rows(snapshot, "trl")
    ]
    raw = pq.read_table(openai.file.path).column("input").to_pylist()[0]
    assert json.loads(raw["messages"]) == openai_messages(MULTI_TURN)  # JSON text for any Parquet reader


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_row_stream_still_writes_the_schema(tmp_path, fmt):
    written = write_parquet(iter([]), fmt, tmp_path / "empty.parquet")
    assert written.rows == 0 and list(read_rows(tmp_path / "empty.parquet")) == []
    assert pq.read_schema(tmp_path / "empty.parquet").names == parquet.SCHEMAS[fmt].names


def test_asking_again_returns_the_same_file_and_sends_nothing(snapshot, media, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = snapshot_file_request(snapshot=snapshot, fmt="openai")
        again = snapshot_file_request(snapshot=snapshot, fmt="openai", span="completion")  # no span but trl's
    assert first.pk == again.pk and again.status == "pending" and again.span == "fragment"
    assert len(callbacks) == 1
    snapshot_file_build(file_id=first.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        done = snapshot_file_request(snapshot=snapshot, fmt="openai")
    assert done.pk == first.pk and done.status == "done" and not callbacks
    assert SnapshotFile.objects.count() == 1
    # a redelivered task leaves a done file as it is
    before = (done.sha256, done.finished_at)
    assert (snapshot_file_build(file_id=first.pk).sha256, SnapshotFile.objects.get().finished_at) == before
    # each trl span is its own file
    trl = {snapshot_file_request(snapshot=snapshot, fmt="trl", span=span).pk for span in ("fragment", "completion")}
    assert len(trl) == 2 and SnapshotFile.objects.count() == 3


def test_a_failure_marks_the_file_failed_with_the_reason_and_asking_again_retries(
    project, snapshot, media, monkeypatch, django_capture_on_commit_callbacks
):
    file = snapshot_file_request(snapshot=snapshot, fmt="sharegpt")
    real = snapshot_files.snapshot_rows

    def broken(*args, **kwargs):  # fails after the first row group was written
        for k, row in enumerate(real(*args, **kwargs)):
            if k == 5:
                raise RuntimeError("the database went away")
            yield row

    monkeypatch.setattr(parquet, "ROW_GROUP", 2)
    monkeypatch.setattr(snapshot_files, "snapshot_rows", broken)
    failed = snapshot_file_build(file_id=file.pk)
    assert failed.status == "failed" and failed.error == "RuntimeError: the database went away"
    assert failed.rows == 4 and not failed.file and not failed.sha256  # progress up to the failure, no file
    folder = Path(media) / "snapshots" / str(snapshot.pk)
    assert list(folder.iterdir()) == []  # neither the file nor its temporary remains

    monkeypatch.setattr(snapshot_files, "snapshot_rows", real)
    with django_capture_on_commit_callbacks() as callbacks:
        retried = snapshot_file_request(snapshot=snapshot, fmt="sharegpt")
    assert retried.pk == file.pk and retried.status == "pending" and not retried.error and len(callbacks) == 1
    assert snapshot_file_build(file_id=file.pk).status == "done"


def test_a_trl_file_whose_tokenizer_cannot_be_read_fails_with_the_reason(project, snapshot, media, tmp_path):
    broken = CheckpointFactory(project=project, name="gone", path=str(tmp_path / "no-such-model"))
    type(snapshot).objects.filter(pk=snapshot.pk).update(checkpoint=broken)
    snapshot.refresh_from_db()
    file = snapshot_file_build(file_id=snapshot_file_request(snapshot=snapshot, fmt="trl").pk)
    assert file.status == "failed" and "no-such-model" in file.error and file.finished_at is not None


def test_a_trl_file_needs_a_checkpoint_and_formats_are_checked(project, snapshot):
    bare = type(snapshot).objects.create(project=project, name="no checkpoint", content_hash="x" * 64)
    with pytest.raises(ValueError, match=f"snapshot #{bare.pk} has no checkpoint"):
        snapshot_file_request(snapshot=bare, fmt="trl")
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        snapshot_file_request(snapshot=snapshot, fmt="csv")
    with pytest.raises(ValueError, match="unknown span 'all'"):
        snapshot_file_request(snapshot=snapshot, fmt="trl", span="all")
    assert not SnapshotFile.objects.exists()


def test_a_file_left_running_past_the_time_limit_is_made_again(snapshot, media, django_capture_on_commit_callbacks):
    file = snapshot_file_request(snapshot=snapshot, fmt="openai")
    SnapshotFile.objects.filter(pk=file.pk).update(status="running", started_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks() as callbacks:
        assert snapshot_file_request(snapshot=snapshot, fmt="openai").status == "running"  # still in its time
    assert not callbacks
    SnapshotFile.objects.filter(pk=file.pk).update(
        started_at=timezone.now() - snapshot_files.FILE_TASK_LIMIT - timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:  # its worker was killed: made again
        assert snapshot_file_request(snapshot=snapshot, fmt="openai").status == "pending"
    assert len(callbacks) == 1


def test_the_snapshot_admin_page_lists_its_files_and_the_action_asks_for_them(
    client, snapshot, media, django_capture_on_commit_callbacks
):
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client.force_login(admin)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("admin:datasets_datasetsnapshot_changelist"),
            {"action": "write_parquet_files", "_selected_action": [snapshot.pk]},
            follow=True,
        )
    assert "3 file(s) asked for" in response.content.decode() and len(callbacks) == 3
    assert sorted(SnapshotFile.objects.values_list("format", flat=True)) == sorted(FORMATS)
    done = snapshot_file_build(file_id=SnapshotFile.objects.get(format="trl").pk)
    page = client.get(reverse("admin:datasets_datasetsnapshot_change", args=[snapshot.pk])).content.decode()
    assert done.filename in page and reverse("api:snapshot-file-download", args=[done.pk]) in page
    assert done.sha256[:12] in page and page.count(">Pending<") == 2  # the other two
