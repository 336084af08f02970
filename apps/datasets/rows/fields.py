"""What every format shares: the formats and spans, canonical JSON, a frozen item's fields, and the trl row."""

from __future__ import annotations

import json
from json.encoder import encode_basestring

from apps.catalog.models import Query

from ..models import SnapshotPair

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
