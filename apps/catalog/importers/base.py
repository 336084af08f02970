"""The importer interface, and the streaming reader of JSON Lines (or a JSON array) they share."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from workers.progress import Progress

from ..records import QuerySpec, RecordError

_TOO_DEEP = "nested too deeply to read"


def _loads(raw, line: int):
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError("json", f"invalid JSON: {exc}", line) from None
    except RecursionError:
        raise RecordError("json", _TOO_DEEP, line) from None


def iter_json_records(path: Path, progress: Progress | None = None) -> Iterator[tuple[int, object]]:
    """(line number, value) for each record of a JSON Lines file, streamed.

    A file whose first character is `[` is read as one JSON array instead (ToolACE ships its data so);
    its records are numbered from 1 by position. Blank lines are skipped. `progress` gets {"done", "total"}
    (bytes read) after each record.
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
            except RecursionError:
                raise RecordError("json", _TOO_DEEP, 1) from None
            for position, value in enumerate(values, start=1):
                if progress:  # all bytes are read; the report keeps a job's heartbeat going
                    progress({"done": total, "total": total})
                yield position, value
            return
        done = 0
        for line_no, raw in enumerate(fh, start=1):
            done += len(raw)
            if raw.strip():
                yield line_no, _loads(raw, line_no)
            if progress:
                progress({"done": done, "total": total})


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


def record_id(obj: dict, key: str = "id") -> str | None:
    """A record's own id as text (None when it has none): a string or an integer; a list, an object, a
    fraction, NaN or a boolean is refused, naming the field."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(key, f"{value} is not an id (expected a string or an integer)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(key, f"expected a string or an integer, got {type(value).__name__}")
    return str(value)


def decoded_json(obj: dict, key: str, kind: type):
    """obj[key] as a `kind` (list, dict), given either as that value or as a JSON string holding it (FTRL
    stores its fields encoded)."""
    value = require(obj, key, (kind, str))
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RecordError(key, f"a string that is not valid JSON: {exc.msg} at character {exc.pos}") from None
        except RecursionError:
            raise RecordError(key, _TOO_DEEP) from None
        if not isinstance(value, kind):
            raise RecordError(
                key,
                f"expected a {kind.__name__} (or one encoded as a JSON string), "
                f"got a string holding {type(value).__name__}",
            )
    return value


@dataclass
class ReadReport:
    """What an importer saw besides the records it made: assistant turns with and without calls (ToolACE),
    and turns it skipped, by reason."""

    records: int = 0  # records in the file (one may make several queries, or none)
    call_turns: int = 0
    no_call_turns: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class BaseImporter:
    """Turns one file of a source format into QuerySpec records.

    Subclasses set `name` and implement `records_from(obj, line)`; `read` streams the file and stamps
    each error with its line. `report` gathers what was seen and skipped along the way.
    """

    name = ""

    def __init__(self):
        self.report = ReadReport()

    def read(
        self,
        path: Path,
        *,
        answers_path: Path | None = None,
        progress: Progress | None = None,
        name: str | None = None,
    ):
        """Records of the file at `path`; `name` is the file's original name when it is stored under another
        (an upload), for formats that read meaning from it (BFCL's category)."""
        for line, obj in iter_json_records(path, progress):
            yield from self._checked(obj, line)

    def _checked(self, obj, line: int) -> list[QuerySpec]:
        self.report.records += 1
        try:
            if not isinstance(obj, dict):
                raise RecordError("record", f"expected a JSON object, got {type(obj).__name__}")
            records = self.records_from(obj, line)
        except RecordError as exc:
            exc.line = line
            raise
        except RecursionError:
            raise RecordError("record", _TOO_DEEP, line) from None
        for rec in records:
            rec.line = line
        return records

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        raise NotImplementedError
