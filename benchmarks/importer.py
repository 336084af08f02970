"""Import throughput: the bulk, all-or-nothing importer against a naive one-row-at-a-time ORM loop."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

from django.db import transaction

from apps.catalog.importers import get_importer
from apps.catalog.models import Query, QueryTool, Tool
from apps.catalog.services import import_file
from apps.projects.models import Project

N_RECORDS = 5000
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": f"Tool number {i}.",
            "parameters": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "label": {"type": "string"}},
                "required": ["x"],
            },
        },
    }
    for i in range(20)
]


def _write_file(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            tools = [TOOLS[i % 20], TOOLS[(i * 7 + 3) % 20]]
            name = tools[0]["function"]["name"]
            fh.write(
                json.dumps(
                    {
                        "id": f"r{i}",
                        "messages": [{"role": "user", "content": f"Please run {name} on {i} labelled item-{i}."}],
                        "tools": tools,
                        "expected": [{"function": {"name": name, "arguments": {"x": i, "label": f"item-{i}"}}}],
                    }
                )
                + "\n"
            )


def _naive(project: Project, path: Path) -> int:
    """The baseline: parse with the same importer, then save row by row."""
    n = 0
    with transaction.atomic():
        for rec in get_importer("openai").read(path):
            q = Query.objects.create(
                project=project,
                external_id=rec.external_id,
                source="openai",
                messages=rec.messages,
                ground_truth=rec.ground_truth,
                reference_output=rec.reference_output,
                kind=rec.kind,
                difficulty=rec.difficulty,
                difficulty_bucket=rec.difficulty_bucket,
                content_hash=rec.content_hash,
            )
            for pos, spec in enumerate(rec.tools):
                tool, _ = Tool.objects.get_or_create(
                    project=project,
                    name=spec.name,
                    schema_hash=spec.schema_hash,
                    defaults={"description": spec.description, "parameters": spec.parameters},
                )
                QueryTool.objects.create(query=q, tool=tool, position=pos)
            n += 1
    return n


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.jsonl"
        _write_file(path, N_RECORDS)
        tag = uuid.uuid4().hex[:8]
        naive_project = Project.objects.create(name=f"bench-naive-{tag}")
        bulk_project = Project.objects.create(name=f"bench-bulk-{tag}")
        try:
            naive_s, n = _timed(lambda: _naive(naive_project, path))
            bulk_s, counts = _timed(lambda: import_file(project=bulk_project, path=path, fmt="openai"))
            again_s, again = _timed(lambda: import_file(project=bulk_project, path=path, fmt="openai"))
            assert n == counts.created == again.unchanged == N_RECORDS
        finally:
            naive_project.delete()
            bulk_project.delete()
    print(f"records: {N_RECORDS}")
    print(f"naive row-by-row: {N_RECORDS / naive_s:,.0f} records/s")
    print(f"bulk importer:    {N_RECORDS / bulk_s:,.0f} records/s  ({naive_s / bulk_s:.1f}x the naive loop)")
    print(f"re-import (all unchanged): {N_RECORDS / again_s:,.0f} records/s  ({naive_s / again_s:.1f}x)")
