"""FTRL: `{"messages", "tools", "codes", "unsolved_set", "answer"}`, tools with Python implementations.

FTRL records carry no call-level ground truth: they are scored by executing the calls (Solve-P/R/F1),
so `ground_truth` stays empty (unknown) and the unsolved set becomes the query's sub-answers.
"""
from __future__ import annotations

from ..records import QuerySpec, RecordError, ToolSpec
from ..schema import sha256_of
from .base import BaseImporter, require


class FtrlImporter(BaseImporter):
    name = "ftrl"

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        messages = require(obj, "messages", list)
        raw_tools = require(obj, "tools", list)
        codes = require(obj, "codes", dict)
        unsolved = require(obj, "unsolved_set", dict)
        answer = obj.get("answer", "")
        if answer is None:
            answer = ""
        if not isinstance(answer, str):
            raise RecordError("answer", f"expected a string, got {type(answer).__name__}")
        tools = []
        for i, raw in enumerate(raw_tools):
            spec = ToolSpec.parse(raw, f"tools[{i}]")
            code = codes.get(spec.name, "")
            if not isinstance(code, str):
                raise RecordError(f"codes.{spec.name}", "expected Python source as a string")
            if code:
                try:
                    compile(code, f"<{spec.name}>", "exec")
                except SyntaxError as exc:
                    raise RecordError(f"codes.{spec.name}", f"not valid Python: {exc.msg} (line {exc.lineno})") from None
            tools.append(ToolSpec(spec.name, spec.description, spec.parameters, code))
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
                external_id=f"ftrl:{obj.get('id') or sha256_of(obj)[:24]}",
                messages=messages,
                tools=tools,
                ground_truth=None,
                kind=kind,
                sub_answers=unsolved,
                final_answer=answer,
            )
        ]
