"""A row as a dict: what a row takes from its query alone, and the row of any format; its canonical JSON line."""

from __future__ import annotations

from apps.catalog.models import Query
from apps.training.policy import query_tools

from ..models import SnapshotPair
from .fields import _encode, check_format, trl_row
from .openai import openai_messages, openai_tool
from .sharegpt import sharegpt_answer, sharegpt_conversations, sharegpt_tools


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
