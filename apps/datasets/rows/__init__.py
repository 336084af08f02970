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

from .fields import FORMATS, ITEM_FIELDS, ROW_FIELDS, SPANS, check_format, row_metadata, trl_ids, trl_row
from .lines import LINES
from .openai import openai_messages, openai_name, openai_tool
from .render import encode_row, openai_row, query_fields, render_row, sharegpt_row
from .sharegpt import sharegpt_answer, sharegpt_conversations, sharegpt_tools

__all__ = [
    "FORMATS",
    "ITEM_FIELDS",
    "LINES",
    "ROW_FIELDS",
    "SPANS",
    "check_format",
    "encode_row",
    "openai_messages",
    "openai_name",
    "openai_row",
    "openai_tool",
    "query_fields",
    "render_row",
    "row_metadata",
    "sharegpt_answer",
    "sharegpt_conversations",
    "sharegpt_row",
    "sharegpt_tools",
    "trl_ids",
    "trl_row",
]
