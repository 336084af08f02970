"""The importer interface, and the streaming reader of JSON Lines (or a JSON array) they share."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from ..records import QuerySpec, RecordError

ProgressFn = Callable[[int, int], None]


def iter_json_records(path: Path, progress: ProgressFn | None = None) -> Iterator[tuple[int, object]]:
    """(line number, value) for each record of a JSON Lines file, streamed.

    A file whose first character is `[` is read as one JSON array instead (ToolACE ships its data so);
    its records are numbered from 1 by position. Blank lines are skipped.
    """
    if not path.is_file():
        raise RecordError("file", f"{path} does not exist or is not a file")
    total = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(1024).lstrip()
        fh.seek(0)
        if head.startswith(b"["):
            try:
                values = json.load(fh)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RecordError("json", f"invalid JSON array: {exc}", 1) from None
            if progress:
                progress(total, total)
            yield from enumerate(values, start=1)
            return
        done = 0
        for line_no, raw in enumerate(fh, start=1):
            done += len(raw)
            if raw.strip():
                try:
                    yield line_no, json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise RecordError("json", f"invalid JSON: {exc}", line_no) from None
            if progress:
                progress(done, total)


def require(obj: dict, key: str, kind: type | tuple[type, ...], field: str | None = None):
    """obj[key], checked to be of `kind`; RecordError naming the field otherwise."""
    field = field or key
    if key not in obj:
        raise RecordError(field, "missing")
    value = obj[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RecordError(field, f"expected {names}, got {type(value).__name__}")
    return value


class BaseImporter:
    """Turns one file of a source format into QuerySpec records.

    Subclasses set `name` and implement `records_from(obj, line)`; `read` streams the file and stamps
    each error with its line.
    """

    name = ""

    def read(self, path: Path, *, answers_path: Path | None = None, progress: ProgressFn | None = None):
        for line, obj in iter_json_records(path, progress):
            yield from self._checked(obj, line)

    def _checked(self, obj, line: int) -> list[QuerySpec]:
        try:
            if not isinstance(obj, dict):
                raise RecordError("record", f"expected a JSON object, got {type(obj).__name__}")
            records = self.records_from(obj, line)
        except RecordError as exc:
            exc.line = line
            raise
        for rec in records:
            rec.line = line
        return records

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        raise NotImplementedError
