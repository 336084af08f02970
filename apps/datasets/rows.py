"""Export row formats: one frozen snapshot item rendered as a trl, openai or sharegpt row (a JSON-able dict).

Pure functions: they read the item, its query (messages and tools prefetched) and, for trl, the prompt the
policy's chat template made and its token ids; they touch neither the database nor a tokenizer. The preference
training builds its rows with `trl_row` (`apps.datasets.services.snapshot_rows`); the JSON Lines export writes
the same rows' canonical JSON from pre-encoded pieces (`LINES`, below: byte for byte `encode_row` of these
dicts), so what is exported is what was trained.

A pair is a step-level one: both fragments continue the same assistant `prefix`. Only trl can say so (its
prompt may end inside the assistant turn); the openai and sharegpt formats have no partial assistant turn,
so their outputs are the whole assistant text so far, prefix + fragment, whatever `span` says. With
`complete` (`apps.datasets.completion`), each side that stops mid-answer arrives here already completed by its
best finished rollout: every output is then a whole answer. docs/exports.md describes the formats.

An item is a `SnapshotPair` or anything with its fields as attributes (the export reads plain tuples, not model
instances). What a row takes from its query alone (`query_fields`: openai's `input`, sharegpt's `conversations`
and `tools`) is made once per query by the export and shared by that query's rows: do not change it in place.
"""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring

from apps.catalog.models import Query
from apps.training.policy import query_tools
from rewards.parsing import parse_output

from .models import SnapshotPair

FORMATS = ("trl", "openai", "sharegpt")
SPANS = ("fragment", "completion")  # trl only: where the shared prefix goes (the prompt, or both completions)
# Canonical JSON (keys sorted, UTF-8 as is); one encoder made once, not one per row as json.dumps(**options) does.
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False).encode
# A str as that encoder writes it (quotes included): the same function it calls for every string it meets.
_string = encode_basestring
# A frozen item's fields in the order the export reads them from the database.
ITEM_FIELDS = (
    "ordinal",
    "pair_id",
    "query_id",
    "prefix",
    "chosen",
    "rejected",
    "deficiency",
    "gap",
    "status",
    "chosen_ends",
    "rejected_ends",
    "prefix_ids",
    "chosen_ids",
    "rejected_ids",
)
# ... and what a row is made of (`LINES`' `line` takes them as a tuple in this order): those, then whether the
# export completed a side that stopped mid-answer (`complete`).
ROW_FIELDS = (*ITEM_FIELDS, "completed")
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
        "completed": getattr(item, "completed", False),
    }


def trl_ids(item: SnapshotPair, prompt_ids: list[int] | None, span: str = "fragment"):
    """(prompt_ids, chosen_ids, rejected_ids) of a trl row: the token ids the policy sampled (docs/token-ids.md),
    split where the row's texts are. `prompt_ids` is the rendered chat prompt's ids (it ends the template's
    assistant header, so tokenising it alone is boundary-safe); the prefix's sampled ids go after it (span
    fragment) or before each side's (span completion). All None when the pair has no ids (a text-only backend,
    an imported pair); a side's None after an annotator's edit (its text is then tokenised on its own)."""
    if prompt_ids is None or item.prefix_ids is None:
        return None, None, None
    if span == "fragment":
        return [*prompt_ids, *item.prefix_ids], item.chosen_ids, item.rejected_ids

    def after_prefix(ids):
        return None if ids is None else [*item.prefix_ids, *ids]

    return list(prompt_ids), after_prefix(item.chosen_ids), after_prefix(item.rejected_ids)


def trl_row(
    item: SnapshotPair, query: Query, *, prompt: str, span: str = "fragment", prompt_ids: list[int] | None = None
) -> dict:
    """TRL's standard (not conversational) preference row `{"prompt", "chosen", "rejected"}` + `metadata`.

    `prompt` is `query_prompt(tokenizer, query)`: the policy's chat template over the query's messages and
    tools, ending with the assistant turn's header. With `span="fragment"` the shared prefix is part of the
    prompt and chosen/rejected are the bare fragments (the loss sees only where the branches differ, as in
    iTool); with `span="completion"` the prompt stops at the assistant header and both completions start
    with the prefix.

    TRL's trainers append the tokenizer's EOS to chosen and rejected of non-conversational rows; metadata's
    `chosen_ends` / `rejected_ends` say whether a fragment really ends the answer (with span="fragment", a
    fragment that stops mid-answer should be trained without that EOS, as this project's rounds do; the
    `complete` export makes every side a whole answer). `prompt_ids` / `chosen_ids` / `rejected_ids` are the
    sampled token ids of the same three parts (`trl_ids`; `prompt_ids` given here is the rendered prompt's).
    """
    check_format("trl", span)
    if span == "fragment":
        text_prompt, chosen, rejected = prompt + item.prefix, item.chosen, item.rejected
    else:
        text_prompt, chosen, rejected = prompt, item.prefix + item.chosen, item.prefix + item.rejected
    ids = trl_ids(item, prompt_ids, span)
    return {
        "prompt": text_prompt,
        "chosen": chosen,
        "rejected": rejected,
        "metadata": row_metadata(item, query),
        "prompt_ids": ids[0],
        "chosen_ids": ids[1],
        "rejected_ids": ids[2],
    }


def query_fields(fmt: str, query: Query) -> dict:
    """The keys of a `fmt` row that depend on its query alone: openai's `input`, sharegpt's `conversations`
    and `tools` (trl's prompt is rendered apart, by the policy's chat template); plus, for sharegpt, `_names`:
    the offered tools' names its answers are parsed with (not a column)."""
    if fmt == "openai":
        tools = query_tools(query)
        return {
            "input": {
                "messages": openai_messages(query.messages, [t["function"]["name"] for t in tools]),
                "tools": [openai_tool(t) for t in tools],
            }
        }
    if fmt == "sharegpt":
        names = tuple(t["function"]["name"] for t in query_tools(query))
        return {
            "conversations": sharegpt_conversations(query.messages, names),
            "tools": sharegpt_tools(query),
            "_names": names,
        }
    return {}


# --- openai ------------------------------------------------------------------------------------------------
# OpenAI's preference fine-tuning rows (https://platform.openai.com/docs/guides/direct-preference-optimization,
# "Data format"; the message and tool objects are the Chat Completions ones of its API reference): an assistant
# message's `tool_calls` carry an `id`, `"type": "function"` and `function.arguments` as a JSON string; every `tool`
# message answers one of them by `tool_call_id`; function names are a-z, A-Z, 0-9, `_` and `-`, at most 64.

_OPENAI_NAME = re.compile(r"[^A-Za-z0-9_-]")


def openai_name(name: str) -> str:
    """A tool name as OpenAI accepts it: other characters (ToolACE's spaces) become `_`, cut at 64."""
    return _OPENAI_NAME.sub("_", name)[:64] or "_"


def openai_tool(tool: dict) -> dict:
    return {**tool, "function": {**tool["function"], "name": openai_name(tool["function"]["name"])}}


def _message_calls(message: dict, names) -> list[dict]:
    """An assistant message's calls as [{"id" or None, "name", "arguments": dict}]: its `tool_calls`, or the calls
    its text makes (ToolACE keeps calls as text `[Func(a=1)]`) when it has no `tool_calls`."""
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call)
        arguments = fn.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = {"_raw": arguments}  # kept, not lost: the schema only asks for a JSON string
        calls.append({"id": call.get("id"), "name": fn["name"], "arguments": arguments})
    if calls or not isinstance(message.get("content"), str):
        return calls
    parsed = parse_output(message["content"], names)
    return [{"id": None, **c.as_json()} for c in parsed.calls] if parsed.status == "calls" else []


def _text(content) -> str:
    return content if isinstance(content, str) else "" if content is None else json.dumps(content, ensure_ascii=False)


def openai_messages(messages: list[dict], names=()) -> list[dict]:
    """The query's messages in OpenAI's chat form: assistant calls as `tool_calls` with ids (`call_<n>` where the
    record had none; calls written as text become `tool_calls` when tool results answer them), each tool result
    with the `tool_call_id` of the call it answers (its own when that matches, else the next unanswered call of
    the assistant turn before it that no later result names, in order). A tool result with no call to answer
    becomes a user message."""
    out: list[dict] = []
    open_ids: list[str] = []  # the last assistant turn's calls not answered yet
    made = 0
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            follows = index + 1 < len(messages) and messages[index + 1].get("role") == "tool"
            calls = _message_calls(message, names) if message.get("tool_calls") or follows else []
            if not calls:
                out.append({"role": "assistant", "content": _text(message.get("content"))})
                open_ids = []
                continue
            tool_calls = []
            for call in calls:
                made += 1
                call_id = call["id"] if isinstance(call["id"], str) and call["id"] else f"call_{made}"
                tool_calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": openai_name(call["name"]),
                            "arguments": json.dumps(call["arguments"], ensure_ascii=False, sort_keys=True),
                        },
                    }
                )
            text = message.get("content") if message.get("tool_calls") else None  # text calls: now tool_calls
            out.append(
                {
                    "role": "assistant",
                    "content": text if isinstance(text, str) and text else None,
                    "tool_calls": tool_calls,
                }
            )
            open_ids = [c["id"] for c in tool_calls]
        elif role == "tool":
            own = message.get("tool_call_id")
            claimed = set()  # ids the next tool results give as their own: kept for them
            for later in messages[index + 1 :]:
                if later.get("role") != "tool":
                    break
                claimed.add(later.get("tool_call_id"))
            free = [c for c in open_ids if c not in claimed] or open_ids
            call_id = own if own in open_ids else free[0] if free else None
            if call_id is None:
                out.append({"role": "user", "content": _text(message.get("content"))})
                continue
            open_ids.remove(call_id)
            out.append({"role": "tool", "tool_call_id": call_id, "content": _text(message.get("content"))})
        else:
            out.append({"role": role, "content": _text(message.get("content"))})
            open_ids = []
    return out


def openai_row(item: SnapshotPair, query: Query, *, shared: dict | None = None) -> dict:
    """One line of OpenAI's preference (DPO) fine-tuning file: `{"input": {"messages", "tools"},
    "preferred_output": [assistant message], "non_preferred_output": [assistant message]}`.

    OpenAI's format has no partial assistant turn to continue, so each output is the whole assistant text
    so far, prefix + fragment, as the policy wrote it (raw text in its call format, not `tool_calls`: a
    fragment rarely ends where a call does, and OpenAI's DPO takes text outputs). Only the documented keys are
    written; metadata is left out. `input.messages` follow `openai_messages`, `input.tools` `openai_tool`.
    `shared` is `query_fields("openai", query)` when the caller made it already.
    """
    return {
        **(shared if shared is not None else query_fields("openai", query)),
        "preferred_output": [{"role": "assistant", "content": item.prefix + item.chosen}],
        "non_preferred_output": [{"role": "assistant", "content": item.prefix + item.rejected}],
    }


# --- sharegpt ----------------------------------------------------------------------------------------------
# LLaMA-Factory's sharegpt role tags (data/README.md, "tags"): human and observation at even indexes of
# `conversations` (0, 2, …), gpt and function_call at odd ones; a leading "system" turn is the system
# prompt; a preference row's conversations end on a human/observation turn (odd count). A `function_call`
# turn's value is JSON, `{"name", "arguments"}` or a list of them (its FunctionFormatter parses it and the
# template writes the calls in its own tool format, e.g. Qwen's `<tool_call>` tags).
_SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "tool": "observation", "system": "system"}
_ASKS = ("human", "observation")  # the turns at even places
_ANSWERS = ("gpt", "function_call")  # ... and at odd ones


def _function_call(calls: list[dict]) -> str:
    """A function_call turn's value: one call's `{"name", "arguments"}`, or a list of them (parallel calls)."""
    value = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
    return _encode(value[0] if len(value) == 1 else value)


def sharegpt_answer(text: str, names=()) -> dict:
    """An assistant answer as a sharegpt turn: `function_call` with its calls as JSON when the text is a
    well-formed call answer, else `gpt` with the text as it is (prose, a malformed or unfinished call)."""
    parsed = parse_output(text, names)
    if parsed.status == "calls" and parsed.calls:
        return {"from": "function_call", "value": _function_call([c.as_json() for c in parsed.calls])}
    return {"from": "gpt", "value": text}


def _merge(turns: list[dict], turn: dict) -> None:
    """Append `turn`, merged into the previous one when both sit on the same side of the alternation
    (two user messages in a row, as BFCL's live_irrelevance_292 has; consecutive tool results; two answers)."""
    if not turns or turns[-1]["from"] == "system" or (turns[-1]["from"] in _ASKS) != (turn["from"] in _ASKS):
        turns.append(turn)
        return
    last = turns[-1]
    if "function_call" in (last["from"], turn["from"]):  # calls win: a function_call value must stay JSON
        calls = [c for t in (last, turn) if t["from"] == "function_call" for c in _as_list(json.loads(t["value"]))]
        turns[-1] = {"from": "function_call", "value": _function_call(calls)}
        return
    kind = last["from"] if last["from"] == turn["from"] else "human"
    turns[-1] = {"from": kind, "value": last["value"] + "\n" + turn["value"]}


def _as_list(value):
    return value if isinstance(value, list) else [value]


def sharegpt_conversations(messages: list[dict], names=()) -> list[dict]:
    """OpenAI chat messages as sharegpt turns that keep LLaMA-Factory's alternation: consecutive turns on the
    same side merge (texts joined by a newline); assistant calls (`tool_calls`, or calls written as text)
    become a `function_call` turn (any text beside them is dropped: the value must be JSON)."""
    turns: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            calls = _message_calls(message, names)
            turn = (
                {"from": "function_call", "value": _function_call(calls)}
                if calls
                else {"from": "gpt", "value": _text(message.get("content"))}
            )
        else:
            turn = {"from": _SHAREGPT_FROM.get(role, role), "value": _text(message.get("content"))}
        _merge(turns, turn)
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
    "value"}], "chosen": {"from", "value"}, "rejected": {...}, "tools": "<JSON list>"}`.

    Register it in LLaMA-Factory's dataset_info.json with `"formatting": "sharegpt", "ranking": true,
    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "tools": "tools"}`
    (hiyouga/LLaMA-Factory data/README.md, "Sharegpt Format → Preference Dataset"). Like openai, chosen/rejected
    are prefix + fragment; a whole call answer is a `function_call` turn (JSON calls, as the template expects
    beside a `tools` column), anything else a `gpt` turn with the text. `tools` is a JSON string (keys sorted)
    of bare function schemas `{"name", "description", "parameters"}`, the form its tool formatter reads.
    `shared` is `query_fields("sharegpt", query)` when the caller made it already.
    """
    shared = shared if shared is not None else query_fields("sharegpt", query)
    return {
        "conversations": shared["conversations"],
        "tools": shared["tools"],
        "chosen": sharegpt_answer(item.prefix + item.chosen, shared["_names"]),
        "rejected": sharegpt_answer(item.prefix + item.rejected, shared["_names"]),
    }


def render_row(
    fmt: str,
    item: SnapshotPair,
    query: Query,
    *,
    prompt: str | None = None,
    span: str = "fragment",
    shared: dict | None = None,
    prompt_ids: list[int] | None = None,
) -> dict:
    """The row of `fmt` for one item; trl needs the query's rendered `prompt` (and takes its token ids,
    `prompt_ids`), the others ignore them and may be given their `query_fields` (`shared`) made once for the
    query."""
    check_format(fmt, span)
    if fmt == "trl":
        if prompt is None:
            raise ValueError("a trl row needs the prompt rendered by the policy's chat template")
        return trl_row(item, query, prompt=prompt, span=span, prompt_ids=prompt_ids)
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
