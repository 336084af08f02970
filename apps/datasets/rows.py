"""Export row formats: one frozen snapshot item rendered as a trl, openai or sharegpt row (a JSON-able dict).

Pure functions: they read the item, its query (messages and tools prefetched) and, for trl, the prompt the
policy's chat template made; they touch neither the database nor a tokenizer. The preference training builds its
rows with `trl_row` (`apps.datasets.services.snapshot_rows`); the JSON Lines export writes the same rows' canonical
JSON from pre-encoded pieces (`LINES`, below: byte for byte `encode_row` of these dicts), so what is exported is
what was trained.

A pair is a step-level one: both fragments continue the same assistant `prefix`. Only trl can say so (its
prompt may end inside the assistant turn); the openai and sharegpt formats have no partial assistant turn,
so their outputs are the whole assistant text so far, prefix + fragment, whatever `span` says.

An item is a `SnapshotPair` or anything with its fields as attributes (the export reads plain tuples, not model
instances). What a row takes from its query alone (`query_fields`: openai's `input`, sharegpt's `conversations`
and `tools`) is made once per query by the export and shared by that query's rows: do not change it in place.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring

from apps.catalog.models import Query
from apps.rewards.parsing import render_call_list
from apps.training.policy import query_tools

from .models import SnapshotPair

FORMATS = ("trl", "openai", "sharegpt")
SPANS = ("fragment", "completion")  # trl only: where the shared prefix goes (the prompt, or both completions)
# Canonical JSON (keys sorted, UTF-8 as is); one encoder made once, not one per row as json.dumps(**options) does.
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False).encode
# A str as that encoder writes it (quotes included): the same function it calls for every string it meets.
_string = encode_basestring
# A frozen item's fields in the order the export reads them (`LINES`' `line` takes them as a tuple in this order).
ITEM_FIELDS = ("ordinal", "pair_id", "query_id", "prefix", "chosen", "rejected", "deficiency", "gap", "status",
               "chosen_ends", "rejected_ends")
_TEXTS = slice(ITEM_FIELDS.index("prefix"), ITEM_FIELDS.index("rejected") + 1)  # prefix, chosen, rejected


def check_format(fmt: str, span: str = "fragment") -> None:
    """Raise ValueError naming the choices when `fmt` or `span` is not one of them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if span not in SPANS:
        raise ValueError(f"unknown span {span!r}: expected one of {', '.join(SPANS)}")


def row_metadata(item: SnapshotPair, query: Query) -> dict:
    """Where a row came from: enough to find the pair, its query and the snapshot again."""
    return {
        "snapshot_id": item.snapshot_id,
        "snapshot_hash": item.snapshot.content_hash,
        "ordinal": item.ordinal,
        "pair_id": item.pair_id,
        "query_id": query.pk,
        "query_external_id": query.external_id,
        "deficiency": item.deficiency,
        "gap": item.gap,
        "status": item.status,
        "chosen_ends": item.chosen_ends,
        "rejected_ends": item.rejected_ends,
    }


def trl_row(item: SnapshotPair, query: Query, *, prompt: str, span: str = "fragment") -> dict:
    """TRL's standard (not conversational) preference row `{"prompt", "chosen", "rejected"}` + `metadata`.

    `prompt` is `query_prompt(tokenizer, query)`: the policy's chat template over the query's messages and
    tools, ending with the assistant turn's header. With `span="fragment"` the shared prefix is part of the
    prompt and chosen/rejected are the bare fragments (the loss sees only where the branches differ, as in
    iTool); with `span="completion"` the prompt stops at the assistant header and both completions start
    with the prefix.

    TRL's trainers append the tokenizer's EOS to chosen and rejected of non-conversational rows; metadata's
    `chosen_ends` / `rejected_ends` say whether a fragment really ends the answer (with span="fragment", a
    fragment that stops mid-answer should be trained without that EOS, as this project's rounds do).
    """
    check_format("trl", span)
    if span == "fragment":
        prompt, chosen, rejected = prompt + item.prefix, item.chosen, item.rejected
    else:
        chosen, rejected = item.prefix + item.chosen, item.prefix + item.rejected
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "metadata": row_metadata(item, query)}


def query_fields(fmt: str, query: Query) -> dict:
    """The keys of a `fmt` row that depend on its query alone: openai's `input`, sharegpt's `conversations`
    and `tools` (trl's prompt is rendered apart, by the policy's chat template)."""
    if fmt == "openai":
        return {"input": {"messages": query.messages, "tools": query_tools(query)}}
    if fmt == "sharegpt":
        return {"conversations": sharegpt_conversations(query.messages), "tools": sharegpt_tools(query)}
    return {}


def openai_row(item: SnapshotPair, query: Query, *, shared: dict | None = None) -> dict:
    """One line of OpenAI's preference (DPO) fine-tuning file: `{"input": {"messages", "tools"},
    "preferred_output": [assistant message], "non_preferred_output": [assistant message]}`.

    OpenAI's format has no partial assistant turn to continue, so each output is the whole assistant text
    so far, prefix + fragment, as the policy wrote it (raw text in its call format, not `tool_calls`: a
    fragment rarely ends where a call does). Only the documented keys are written; metadata is left out.
    Format: https://platform.openai.com/docs/guides/direct-preference-optimization (data format).
    `shared` is `query_fields("openai", query)` when the caller made it already.
    """
    return {
        **(shared if shared is not None else query_fields("openai", query)),
        "preferred_output": [{"role": "assistant", "content": item.prefix + item.chosen}],
        "non_preferred_output": [{"role": "assistant", "content": item.prefix + item.rejected}],
    }


# LLaMA-Factory's sharegpt role tags (data/README.md, "tags"): human and observation at even indexes of
# `conversations` (0, 2, …), gpt and function_call at odd ones; a leading "system" turn is the system
# prompt; a preference row's conversations end on a human/observation turn (odd count).
_SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "tool": "observation", "system": "system"}


def _assistant_text(message: dict) -> str:
    """An earlier assistant turn as the policy's chat template writes it: its text, then its calls as a
    Python call list (workers.llm.tiny.CHAT_TEMPLATE), the same form as the chosen/rejected values."""
    text = message.get("content") or ""
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call)
        arguments = fn.get("arguments") or {}
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        calls.append({"name": fn["name"], "arguments": arguments})
    if not calls:
        return text
    return (text + "\n" if text else "") + render_call_list(calls)


def sharegpt_conversations(messages: list[dict]) -> list[dict]:
    """OpenAI chat messages as sharegpt turns; consecutive tool results merge into one observation (the
    alternation LLaMA-Factory checks allows one observation turn between two assistant turns)."""
    turns: list[dict] = []
    for message in messages:
        role = message.get("role")
        source = _SHAREGPT_FROM.get(role, role)
        value = _assistant_text(message) if role == "assistant" else message.get("content") or ""
        if source == "observation" and turns and turns[-1]["from"] == "observation":
            turns[-1]["value"] += "\n" + value
            continue
        turns.append({"from": source, "value": value})
    return turns


def sharegpt_tools(query: Query) -> str:
    """sharegpt's `tools`: a JSON string (keys sorted) of the bare function schemas `{"name", "description",
    "parameters"}`."""
    functions = []
    for tool in query_tools(query):
        fn = dict(tool["function"])
        fn["parameters"] = fn.get("parameters") or {"type": "object", "properties": {}}
        functions.append(fn)
    return _encode(functions)  # canonical, as encode_row


def sharegpt_row(item: SnapshotPair, query: Query, *, shared: dict | None = None) -> dict:
    """A LLaMA-Factory sharegpt preference row (as iTool trained with): `{"conversations": [{"from",
    "value"}], "chosen": {"from": "gpt", "value"}, "rejected": {...}, "tools": "<JSON list>"}`.

    Register it in LLaMA-Factory's dataset_info.json with `"formatting": "sharegpt", "ranking": true,
    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "tools": "tools"}`
    (hiyouga/LLaMA-Factory data/README.md, "Sharegpt Format → Preference Dataset"; the converter is
    src/llamafactory/data/converter.py). Like openai, chosen/rejected are prefix + fragment. `tools` is a
    JSON string (keys sorted) of bare function schemas `{"name", "description", "parameters"}`, the form
    its tool formatter reads in every version. `shared` is `query_fields("sharegpt", query)` when the caller
    made it already.
    """
    return {
        **(shared if shared is not None else query_fields("sharegpt", query)),
        "chosen": {"from": "gpt", "value": item.prefix + item.chosen},
        "rejected": {"from": "gpt", "value": item.prefix + item.rejected},
    }


def render_row(fmt: str, item: SnapshotPair, query: Query, *, prompt: str | None = None,
               span: str = "fragment", shared: dict | None = None) -> dict:
    """The row of `fmt` for one item; trl needs the query's rendered `prompt`, the others ignore it and may be
    given their `query_fields` (`shared`) made once for the query."""
    check_format(fmt, span)
    if fmt == "trl":
        if prompt is None:
            raise ValueError("a trl row needs the prompt rendered by the policy's chat template")
        return trl_row(item, query, prompt=prompt, span=span)
    if fmt == "openai":
        return openai_row(item, query, shared=shared)
    return sharegpt_row(item, query, shared=shared)


def encode_row(row: dict) -> bytes:
    """One JSON Lines line: canonical JSON (keys sorted, UTF-8 as is), so the same row gives the same bytes
    whatever the database (PostgreSQL's jsonb does not keep an object's key order; SQLite does)."""
    return (_encode(row) + "\n").encode()


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


class BaseLines:
    """The JSON Lines of one snapshot in one format. `query_part(query, prompt)` is made once per query (`prompt`:
    the policy's rendering, trl only); `line(part, values)` is one row's line, `values` the item's fields in
    `ITEM_FIELDS` order."""

    def __init__(self, *, snapshot, span: str = "fragment"):
        self.snapshot, self.span = snapshot, span

    def query_part(self, query: Query, prompt: str | None):
        raise NotImplementedError

    def line(self, part, values: tuple) -> bytes:
        raise NotImplementedError


class TrlLines(BaseLines):
    """`trl_row` + `row_metadata`, keys sorted: chosen, metadata {chosen_ends … status}, prompt, rejected."""

    def __init__(self, *, snapshot, span: str = "fragment"):
        check_format("trl", span)
        super().__init__(snapshot=snapshot, span=span)
        self.snapshot_part = (f'"snapshot_hash": {_string(snapshot.content_hash)}, '
                              f'"snapshot_id": {_scalar(snapshot.pk)}')

    def query_part(self, query: Query, prompt: str | None) -> tuple[str, str]:
        if prompt is None:
            raise ValueError("a trl row needs the prompt rendered by the policy's chat template")
        return _string(prompt), f'"query_external_id": {_string(query.external_id)}, "query_id": {_scalar(query.pk)}'

    def line(self, part: tuple[str, str], values: tuple) -> bytes:
        ordinal, pair_id, _, prefix, chosen, rejected, deficiency, gap, status, chosen_ends, rejected_ends = values
        prompt, query = part
        if self.span == "fragment":
            prompt = prompt[:-1] + _string(prefix)[1:]
            chosen, rejected = _string(chosen), _string(rejected)
        else:
            chosen, rejected = _string(prefix + chosen), _string(prefix + rejected)
        return (f'{{"chosen": {chosen}, "metadata": {{"chosen_ends": {_bool(chosen_ends)}, '
                f'"deficiency": {_string(deficiency)}, "gap": {_scalar(gap)}, "ordinal": {_scalar(ordinal)}, '
                f'"pair_id": {_scalar(pair_id)}, {query}, "rejected_ends": {_bool(rejected_ends)}, '
                f'{self.snapshot_part}, "status": {_string(status)}}}, "prompt": {prompt}, '
                f'"rejected": {rejected}}}\n').encode()


class OpenAILines(BaseLines):
    """`openai_row`, keys sorted: input, non_preferred_output, preferred_output."""

    def query_part(self, query: Query, prompt: str | None) -> str:
        return _encode(query_fields("openai", query)["input"])

    def line(self, part: str, values: tuple) -> bytes:
        prefix, chosen, rejected = values[_TEXTS]
        prefix = _string(prefix)[:-1]
        return (f'{{"input": {part}, "non_preferred_output": [{{"content": {prefix}{_string(rejected)[1:]}, '
                f'"role": "assistant"}}], "preferred_output": [{{"content": {prefix}{_string(chosen)[1:]}, '
                f'"role": "assistant"}}]}}\n').encode()


class ShareGPTLines(BaseLines):
    """`sharegpt_row`, keys sorted: chosen, conversations, rejected, tools."""

    def query_part(self, query: Query, prompt: str | None) -> tuple[str, str]:
        shared = query_fields("sharegpt", query)
        return _encode(shared["conversations"]), _string(shared["tools"])

    def line(self, part: tuple[str, str], values: tuple) -> bytes:
        prefix, chosen, rejected = values[_TEXTS]
        prefix = _string(prefix)[:-1]
        conversations, tools = part
        return (f'{{"chosen": {{"from": "gpt", "value": {prefix}{_string(chosen)[1:]}}}, '
                f'"conversations": {conversations}, '
                f'"rejected": {{"from": "gpt", "value": {prefix}{_string(rejected)[1:]}}}, '
                f'"tools": {tools}}}\n').encode()


LINES: dict[str, type[BaseLines]] = {"trl": TrlLines, "openai": OpenAILines, "sharegpt": ShareGPTLines}
