"""Scoring JSON Lines of model outputs (the `score_calls` contract): one verdict per line, never a crash."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from .checker import STRICT, Verdict, check
from .deficiency import Deficiency

OUTPUT_KEYS = ("id", "valid", "deficiency", "detail", "reward", "calls")
_ID_RE = re.compile(r'"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')


def _salvage_id(line: str):
    """The id of a line that is not valid JSON, when it can still be read."""
    match = _ID_RE.search(line)
    if not match:
        return None
    try:
        return json.loads(match.group(1))
    except json.JSONDecodeError:
        return None


def bad_input(detail: str) -> Verdict:
    return Verdict(False, Deficiency.BAD_INPUT.value, detail, None, [], 0.0, "poor")


def score_line(line: str, line_no: int, *, rule: str = STRICT) -> tuple[object, Verdict]:
    """(id, verdict) for one input line `{"id", "messages", "tools", "ground_truth", "output"}`, by the
    checker's `rule` ("strict" or "bfcl")."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return _salvage_id(line), bad_input(f"line {line_no}: invalid JSON: {exc.msg}")
    if not isinstance(record, dict):
        return None, bad_input(f"line {line_no}: expected a JSON object, got {type(record).__name__}")
    record_id = record.get("id")
    missing = [k for k in ("tools", "ground_truth", "output") if k not in record]
    if missing:
        return record_id, bad_input(f"line {line_no}: missing {', '.join(missing)}")
    if record["ground_truth"] is None:
        return record_id, bad_input(f"line {line_no}: ground_truth is null (nothing to check against)")
    if not isinstance(record["output"], (str, dict, list)):
        return record_id, bad_input(f"line {line_no}: output must be text or a message object")
    return record_id, check(record["output"], record["ground_truth"], record["tools"], rule=rule)


def score_lines(lines: Iterable[str], *, with_span: bool = False, rule: str = STRICT) -> Iterator[dict]:
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record_id, verdict = score_line(line, line_no, rule=rule)
        row = verdict.as_dict()
        out = {"id": record_id, **{k: row[k] for k in OUTPUT_KEYS[1:]}}
        if with_span:
            out["span"], out["grade"] = row["span"], row["grade"]
        yield out


def summary(rows: list[dict] | Counter) -> str:
    """`N scored: V valid (P%); by deficiency: ...` for stderr."""
    counts = rows if isinstance(rows, Counter) else Counter(r["deficiency"] or "valid" for r in rows)
    total = sum(counts.values())
    valid = counts.get("valid", 0)
    parts = ", ".join(f"{k} {n}" for k, n in counts.most_common() if k != "valid")
    pct = 100 * valid / total if total else 0.0
    return f"{total} scored: {valid} valid ({pct:.1f}%); by deficiency: {parts or 'none'}"
