"""BFCL v4: a prompt file `BFCL_v4_<category>.json` and its `possible_answer/` twin.

Single-turn AST categories only; irrelevance categories have no answer file (no call is right), and
live_relevance none either (any call is right, so the ground truth stays unknown).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..records import QuerySpec, RecordError, ToolSpec
from .base import BaseImporter, iter_json_records, require

KIND_BY_CATEGORY = {
    "simple_python": "single",
    "simple_java": "single",
    "simple_javascript": "single",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
    "live_simple": "single",
    "live_multiple": "multiple",
    "live_parallel": "parallel",
    "live_parallel_multiple": "parallel_multiple",
    "live_irrelevance": "irrelevance",
    "live_relevance": "single",
}
NO_ANSWER = {"irrelevance", "live_irrelevance", "live_relevance"}
_FILE_RE = re.compile(r"^BFCL_v\d+_(?P<category>.+)\.json$")


def category_of(path: Path) -> str:
    match = _FILE_RE.match(path.name)
    category = match["category"] if match else None
    if category not in KIND_BY_CATEGORY:
        supported = ", ".join(KIND_BY_CATEGORY)
        raise RecordError(
            "file",
            f"{path.name}: not a supported BFCL category file (BFCL_v4_<category>.json with a single-turn "
            f"AST category: {supported})",
        )
    return category


def _language_types_as_strings(schema):
    """Java/JavaScript categories type arguments in their language (String, HashMap…) and pass every
    value as a string; keep that type aside and call the JSON type string."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "type" in out and out["type"] != "dict":
        out["x-language-type"] = out["type"]
        out["type"] = "string"
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _language_types_as_strings(v) for k, v in out["properties"].items()}
    out.pop("items", None)
    return out


class BfclImporter(BaseImporter):
    name = "bfcl"

    def read(self, path: Path, *, answers_path: Path | None = None, progress=None, name: str | None = None):
        # An importer instance reads one file: the category and its answers are per-file context. The
        # category comes from the original name: an upload is stored as BFCL_v4_parallel_RxfqXHK.json
        # when BFCL_v4_parallel.json was uploaded before.
        self.category = category_of(Path(name) if name else path)
        self.answers = self._answers(path, answers_path, self.category)
        yield from super().read(path, progress=progress)

    def _answers(self, path: Path, answers_path: Path | None, category: str) -> dict | None:
        if category in NO_ANSWER:
            return None
        answers_path = answers_path or path.parent / "possible_answer" / path.name
        if not answers_path.is_file():
            raise RecordError("answers", f"missing answer file for {category}: expected {answers_path}")
        answers = {}
        for line, obj in iter_json_records(answers_path):
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
                raise RecordError("answers.id", f"missing in {answers_path.name}", line)
            if not isinstance(obj.get("ground_truth"), list):
                raise RecordError("answers.ground_truth", f"expected a list in {answers_path.name}", line)
            answers[obj["id"]] = obj["ground_truth"]
        return answers

    def records_from(self, obj: dict, line: int) -> list[QuerySpec]:
        category, answers = self.category, self.answers
        qid = require(obj, "id", str)
        question = require(obj, "question", list)
        if len(question) != 1 or not isinstance(question[0], list):
            raise RecordError("question", "expected one turn (a list holding one list of messages)")
        functions = require(obj, "function", list)
        if category in ("simple_java", "simple_javascript"):
            functions = [
                {**f, "parameters": _language_types_as_strings(f.get("parameters", {}))} if isinstance(f, dict) else f
                for f in functions
            ]
        tools = [ToolSpec.parse(f, f"function[{i}]") for i, f in enumerate(functions)]
        if answers is None:
            ground_truth = [] if category != "live_relevance" else None
        elif qid not in answers:
            raise RecordError("id", f"{qid!r} has no entry in the answer file")
        else:
            ground_truth = answers[qid]
        return [
            QuerySpec(
                external_id=f"bfcl:{qid}",
                messages=question[0],
                tools=tools,
                ground_truth=ground_truth,
                kind=KIND_BY_CATEGORY[category],
                metadata={"bfcl_category": category, "bfcl_id": qid},
            )
        ]
