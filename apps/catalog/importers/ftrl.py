"""FTRL: `{"messages", "tools", "codes", "unsolved_set", "answer", "data_source", "split"}`, tools with Python
implementations.

FTRL's own files (read by its `data_sample.py` and verl's `rl_dataset.py`) hold `tools`, `codes` and
`unsolved_set` as JSON *strings*; records with those fields decoded are read alike. FTRL records carry no
call-level ground truth: they are scored by executing the calls (Solve-P/R/F1), so `ground_truth` stays
empty (unknown) and the unsolved set becomes the query's sub-answers. `data_source`, FTRL's own `split` and
`solve_rate` (sampled records) are kept in the query's metadata; the import's split is the one asked for.
"""

from __future__ import annotations

from rewards.schema import sha256_of

from ..records import QuerySpec, RecordError, ToolSpec
from .base import BaseImporter, decoded_json, record_id, require

_METADATA_TEXT = {"data_source": "data_source", "split": "ftrl_split"}  # record key → metadata key


class FtrlImporter(BaseImporter):
    name = "ftrl"

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        messages = require(obj, "messages", list)
        raw_tools = decoded_json(obj, "tools", list)
        codes = decoded_json(obj, "codes", dict)
        unsolved = decoded_json(obj, "unsolved_set", dict)
        answer = obj.get("answer", "")
        if answer is None:
            answer = ""
        if not isinstance(answer, str):
            raise RecordError("answer", f"expected a string, got {type(answer).__name__}")
        tools = []
        for i, raw in enumerate(raw_tools):
            spec = ToolSpec.parse(raw, f"tools[{i}]")
            code = codes.get(spec.name, "")
            tools.append(
                ToolSpec(
                    spec.name, spec.description, spec.parameters, _checked_code(spec.name, code), origin=spec.origin
                )
            )
        names = {t.name for t in tools}
        for name in codes:
            if name not in names:
                raise RecordError(f"codes.{name}", "implementation for a tool that is not in tools")
        for name, answers in unsolved.items():
            if name not in names:
                raise RecordError(f"unsolved_set.{name}", f"unknown tool {name!r}")
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                raise RecordError(f"unsolved_set.{name}", "expected a list of answer strings")
        n_sub = sum(len(a) for a in unsolved.values())
        kind = obj.get("kind") or ("multi_hop" if n_sub > 1 else "single")
        return [
            QuerySpec(
                external_id=f"ftrl:{record_id(obj) or sha256_of(obj)[:24]}",
                messages=messages,
                tools=tools,
                ground_truth=None,
                kind=kind,
                sub_answers=unsolved,
                final_answer=answer,
                metadata=_metadata(obj),
            )
        ]


def _checked_code(name: str, code) -> str:
    if not isinstance(code, str):
        raise RecordError(f"codes.{name}", "expected Python source as a string")
    if "\x00" in code:
        raise RecordError(f"codes.{name}", "contains a NUL character (\\u0000), which the database cannot store")
    if code:
        try:
            compile(code, f"<{name}>", "exec")
        except SyntaxError as exc:
            raise RecordError(f"codes.{name}", f"not valid Python: {exc.msg} (line {exc.lineno})") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise RecordError(f"codes.{name}", f"not valid Python: {type(exc).__name__}") from None
    return code


def _metadata(obj: dict) -> dict:
    metadata = {}
    for key, target in _METADATA_TEXT.items():
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise RecordError(key, f"expected a string, got {type(value).__name__}")
        metadata[target] = value
    solve_rate = obj.get("solve_rate")
    if solve_rate is not None:
        if isinstance(solve_rate, bool) or not isinstance(solve_rate, (int, float)):
            raise RecordError("solve_rate", f"expected a number, got {type(solve_rate).__name__}")
        metadata["solve_rate"] = solve_rate
    return metadata
