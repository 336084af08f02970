"""JSON Lines without a row dict: the export's fast path, byte for byte `encode_row(render_row(...))`."""

from __future__ import annotations

from apps.catalog.models import Query

from .fields import _TEXTS, _encode, _string, check_format
from .render import query_fields
from .sharegpt import sharegpt_answer

# --- JSON Lines without a row dict -----------------------------------------------------------------------
# An export writes millions of lines: building each row as a dict and encoding it with sort_keys costs more than
# everything else per row. `LINES[fmt]` writes the same bytes as `encode_row(render_row(fmt, ...))` from pieces:
# the keys in sorted order as fixed text, what depends on the query alone encoded once per query, the rest
# encoded per row. JSON escapes a string character by character, so the encoding of a + b is the encoding of a
# without its closing quote followed by that of b without its opening one: a shared prefix is encoded once.
# tests/apps/datasets/test_lines.py compares the two on awkward values.


def _scalar(value) -> str:
    """A number, bool, None or str as the canonical encoder writes it (NaN and ±Infinity too)."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and value - value == 0:  # finite: the encoder writes float.__repr__
        return float.__repr__(value)
    return _encode(value)


def _bool(value) -> str:
    return "true" if value is True else "false" if value is False else _encode(value)


def _ids(ids) -> str:
    return "null" if ids is None else _encode(ids)


class BaseLines:
    """The JSON Lines of one snapshot in one format. `query_part(query, prompt, prompt_ids)` is made once per query
    (`prompt`, `prompt_ids`: the policy's rendering and its ids, trl only); `line(part, values)` is one row's line,
    `values` the row's fields in `ROW_FIELDS` order."""

    def __init__(self, *, snapshot, span: str = "fragment"):
        self.snapshot, self.span = snapshot, span

    def query_part(self, query: Query, prompt: str | None, prompt_ids: list[int] | None = None):
        raise NotImplementedError

    def line(self, part, values: tuple) -> bytes:
        raise NotImplementedError


class TrlLines(BaseLines):
    """`trl_row` + `row_metadata`, keys sorted: chosen, chosen_ids, metadata {chosen_ends … status}, prompt,
    prompt_ids, rejected, rejected_ids."""

    def __init__(self, *, snapshot, span: str = "fragment"):
        check_format("trl", span)
        super().__init__(snapshot=snapshot, span=span)
        self.snapshot_part = f'"snapshot_hash": {_string(snapshot.content_hash)}, "snapshot_id": {_scalar(snapshot.pk)}'

    def query_part(self, query: Query, prompt: str | None, prompt_ids: list[int] | None = None):
        if prompt is None:
            raise ValueError("a trl row needs the prompt rendered by the policy's chat template")
        return (
            _string(prompt),
            f'"query_external_id": {_string(query.external_id)}, "query_id": {_scalar(query.pk)}',
            prompt_ids,
        )

    def line(self, part: tuple, values: tuple) -> bytes:
        (
            ordinal,
            pair_id,
            _,
            prefix,
            chosen,
            rejected,
            deficiency,
            gap,
            status,
            chosen_ends,
            rejected_ends,
            prefix_ids,
            chosen_ids,
            rejected_ids,
            completed,
        ) = values
        prompt, query, prompt_ids = part
        if prompt_ids is None or prefix_ids is None:
            ids = ("null", "null", "null")
        elif self.span == "fragment":
            ids = (_encode([*prompt_ids, *prefix_ids]), _ids(chosen_ids), _ids(rejected_ids))
        else:
            ids = (
                _encode(prompt_ids),
                "null" if chosen_ids is None else _encode([*prefix_ids, *chosen_ids]),
                "null" if rejected_ids is None else _encode([*prefix_ids, *rejected_ids]),
            )
        if self.span == "fragment":
            prompt = prompt[:-1] + _string(prefix)[1:]
            chosen, rejected = _string(chosen), _string(rejected)
        else:
            chosen, rejected = _string(prefix + chosen), _string(prefix + rejected)
        return (
            f'{{"chosen": {chosen}, "chosen_ids": {ids[1]}, "metadata": {{"chosen_ends": {_bool(chosen_ends)}, '
            f'"completed": {_bool(completed)}, '
            f'"deficiency": {_string(deficiency)}, "gap": {_scalar(gap)}, "ordinal": {_scalar(ordinal)}, '
            f'"pair_id": {_scalar(pair_id)}, {query}, "rejected_ends": {_bool(rejected_ends)}, '
            f'{self.snapshot_part}, "status": {_string(status)}}}, "prompt": {prompt}, '
            f'"prompt_ids": {ids[0]}, "rejected": {rejected}, "rejected_ids": {ids[2]}}}\n'
        ).encode()


class OpenAILines(BaseLines):
    """`openai_row`, keys sorted: input, non_preferred_output, preferred_output."""

    def query_part(self, query: Query, prompt: str | None, prompt_ids: list[int] | None = None) -> str:
        return _encode(query_fields("openai", query)["input"])

    def line(self, part: str, values: tuple) -> bytes:
        prefix, chosen, rejected = values[_TEXTS]
        prefix = _string(prefix)[:-1]
        return (
            f'{{"input": {part}, "non_preferred_output": [{{"content": {prefix}{_string(rejected)[1:]}, '
            f'"role": "assistant"}}], "preferred_output": [{{"content": {prefix}{_string(chosen)[1:]}, '
            f'"role": "assistant"}}]}}\n'
        ).encode()


class ShareGPTLines(BaseLines):
    """`sharegpt_row`, keys sorted: chosen, conversations, rejected, tools."""

    def query_part(self, query: Query, prompt: str | None, prompt_ids: list[int] | None = None) -> tuple:
        shared = query_fields("sharegpt", query)
        return _encode(shared["conversations"]), _string(shared["tools"]), shared["_names"]

    def line(self, part: tuple, values: tuple) -> bytes:
        prefix, chosen, rejected = values[_TEXTS]
        conversations, tools, names = part
        return (
            f'{{"chosen": {_encode(sharegpt_answer(prefix + chosen, names))}, '
            f'"conversations": {conversations}, '
            f'"rejected": {_encode(sharegpt_answer(prefix + rejected, names))}, '
            f'"tools": {tools}}}\n'
        ).encode()


LINES: dict[str, type[BaseLines]] = {"trl": TrlLines, "openai": OpenAILines, "sharegpt": ShareGPTLines}
