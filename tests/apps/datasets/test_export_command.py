"""`manage.py export_dataset`: writes the service's bytes, prints a summary, and fails clearly."""

import hashlib
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.datasets.models import DatasetSnapshot
from apps.datasets.services import snapshot_export, snapshot_freeze
from tests.factories import ProjectFactory


@pytest.fixture
def snapshot(project, make_pair, round_):
    make_pair("approved", round=round_)
    make_pair("edited", round=round_, chosen="city='Paris' )]")
    return snapshot_freeze(project=project, round=round_)


def export(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("export_dataset", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_writes_the_snapshot_to_a_file(snapshot, tmp_path):
    path = tmp_path / "pairs.jsonl"
    out, err = export(
        "--project", "test-project", "--snapshot", str(snapshot.pk), "--format", "trl", "--output", str(path)
    )
    data = path.read_bytes()
    assert data == b"".join(snapshot_export(snapshot, "trl"))
    assert [json.loads(line)["metadata"]["ordinal"] for line in data.splitlines()] == [0, 1]
    assert out == ""
    assert f"exported 2 rows ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})" in err
    assert f"snapshot #{snapshot.pk}" in err and snapshot.content_hash in err and "span=fragment" in err
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.jsonl"]  # no temporary file left behind

    export(
        "--project",
        "test-project",
        "--snapshot",
        "latest",
        "--format",
        "trl",
        "--span",
        "completion",
        "--output",
        str(path),
    )
    assert path.read_bytes() == b"".join(snapshot_export(snapshot, "trl", "completion")) != data


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_writes_to_stdout(snapshot, fmt):
    out, err = export("--project", "test-project", "--snapshot", "latest", "--format", fmt, "--output", "-")
    assert out.encode() == b"".join(snapshot_export(snapshot, fmt))
    assert "exported 2 rows" in err and f"as {fmt} to -" in err


def test_clear_errors(snapshot, tmp_path):
    out = str(tmp_path / "x.jsonl")
    ProjectFactory(name="empty")
    other = DatasetSnapshot.objects.create(project=ProjectFactory(name="other"), name="o", content_hash="o" * 64)
    cases = [
        (["--project", "nope", "--snapshot", "latest", "--format", "trl"], "no project named 'nope'"),
        (
            ["--project", "test-project", "--snapshot", "999999", "--format", "trl"],
            f"no snapshot #999999 in project 'test-project' \\(its snapshots: #{snapshot.pk}\\)",
        ),
        (
            ["--project", "test-project", "--snapshot", str(other.pk), "--format", "trl"],
            f"no snapshot #{other.pk} in project 'test-project'",
        ),
        (
            ["--project", "test-project", "--snapshot", "newest", "--format", "trl"],
            "--snapshot must be a snapshot id or `latest`, got 'newest'",
        ),
        (["--project", "empty", "--snapshot", "latest", "--format", "trl"], "project 'empty' has no snapshots yet"),
        (
            ["--project", "test-project", "--snapshot", "latest", "--format", "csv"],
            "invalid choice: 'csv' \\(choose from '?trl'?, '?openai'?, '?sharegpt'?\\)",
        ),
        (
            ["--project", "other", "--snapshot", "latest", "--format", "trl"],
            f"snapshot #{other.pk}: snapshot #{other.pk} has no checkpoint",
        ),
    ]
    for args, message in cases:
        with pytest.raises(CommandError, match=message):
            export(*args, "--output", out)
    with pytest.raises(CommandError, match="is not a directory"):
        export(
            "--project",
            "test-project",
            "--snapshot",
            "latest",
            "--format",
            "trl",
            "--output",
            str(tmp_path / "missing" / "x.jsonl"),
        )
    assert list(tmp_path.iterdir()) == []
