"""The export's JSON Lines written from pre-encoded pieces (`rows.LINES`) are byte for byte the generic
`encode_row(render_row(...))`, on awkward values: unicode, quotes, backslashes, control characters, empty
strings, no pair, floats that print in odd ways, token ids present, absent or dropped by an edit, both spans."""

import itertools
import json
import math
from types import SimpleNamespace

import pytest

from apps.catalog.models import Query
from apps.datasets.rows import FORMATS, LINES, ROW_FIELDS, SPANS, encode_row, query_fields, render_row
from apps.datasets.services import snapshot_export, snapshot_freeze, snapshot_rows
from tests.factories import QueryFactory, ToolFactory

TEXTS = [
    "",
    "plain",
    'say "hi"',
    'back\\slash \\u00e9 \\"',
    "line\nbreak\r\n\ttab",
    "\x00\x01\x08\x0c\x1f\x7f",
    "Köln – naïve 😀 \u2028\u2029 ✓",
    "</script>'&",
    " ",
]
FLOATS = [0.1, 1e-7, 3.0, -0.0, 0.30000000000000004, 1e300, 2.5e-320, float("nan"), float("inf"), float("-inf")]


class _Query(SimpleNamespace):
    def ordered_tools(self):
        return self.tools

    def openai_tools(self):
        return Query.openai_tools(self)


def _tool(name, description):
    return SimpleNamespace(
        as_openai=lambda: {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": description}},
                },
            },
        }
    )


QUERIES = [
    _Query(
        pk=7,
        external_id='ext "7"\\',
        messages=[{"role": "user", "content": "Wetter in Köln?\n"}],
        tools=[_tool("get_weather", "Wetter – heute")],
    ),
    _Query(
        pk=123456789,
        external_id="",
        tools=[],
        messages=[
            {"role": "system", "content": "tab\there"},
            {"role": "user", "content": 'say "x"'},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": "\\u00e9"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "\x1f"},
        ],
    ),
]
PROMPTS = ["<|im_start|>user\nWetter in Köln?<|im_end|>\n<|im_start|>assistant\n", ""]
PROMPT_IDS = [[5, 6, 7], None]
# (prefix_ids, chosen_ids, rejected_ids): all sampled, an edited chosen, none (a text-only backend), an empty prefix
IDS = [([1, 2], [3], [4, 0]), ([1], None, [2]), (None, None, None), ([], [9, 9], [8])]


def _items():
    """Items (as the export reads them) cycling through the awkward texts and floats."""
    snapshot = SimpleNamespace(pk=42, content_hash="ab" * 32)
    texts = itertools.cycle(TEXTS)
    for k, gap in enumerate(FLOATS * 2):
        values = dict(
            ordinal=k * 1000,
            pair_id=None if k % 3 == 0 else 10**k,
            query_id=0,
            prefix=next(texts),
            chosen=next(texts),
            rejected=next(texts),
            deficiency=["", "wrong_value", 'odd "kind"'][k % 3],
            gap=gap,
            status="approved" if k % 2 else "edited",
            chosen_ends=k % 2 == 0,
            rejected_ends=k % 4 == 0,
            completed=k % 3 == 1,
        )
        values.update(zip(("prefix_ids", "chosen_ids", "rejected_ids"), IDS[k % len(IDS)]))
        yield (
            snapshot,
            SimpleNamespace(snapshot=snapshot, snapshot_id=snapshot.pk, **values),
            tuple(values[name] for name in ROW_FIELDS),
        )


@pytest.mark.parametrize("fmt,span", [(fmt, span) for fmt in FORMATS for span in SPANS])
def test_lines_are_the_generic_encoding_of_the_rows(fmt, span):
    checked = 0
    for (snapshot, item, values), (query, prompt, ids) in itertools.product(
        _items(), zip(QUERIES, PROMPTS, PROMPT_IDS)
    ):
        lines = LINES[fmt](snapshot=snapshot, span=span)
        part = lines.query_part(query, prompt if fmt == "trl" else None, ids)
        generic = encode_row(
            render_row(
                fmt,
                item,
                query,
                prompt=prompt,
                span=span,
                prompt_ids=ids,
                shared=query_fields(fmt, query) if fmt != "trl" else None,
            )
        )
        assert lines.line(part, values) == generic, (fmt, span, values)
        checked += 1
    assert checked == len(FLOATS) * 2 * len(QUERIES)


def test_the_generic_encoding_is_the_canonical_json_of_awkward_values():
    """What the comparison above holds the lines to: json's own canonical text (keys sorted, UTF-8 as is,
    NaN and Infinity as json writes them), so the fast lines did not drift with it."""
    snapshot, item, values = next(_items())  # gap 0.1, pair_id None
    row = render_row("trl", item, QUERIES[0], prompt=PROMPTS[0])
    line = LINES["trl"](snapshot=snapshot).line(
        LINES["trl"](snapshot=snapshot).query_part(QUERIES[0], PROMPTS[0]), values
    )
    assert line == json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n"
    decoded = json.loads(line)
    assert decoded["metadata"]["pair_id"] is None and decoded["metadata"]["gap"] == 0.1
    assert decoded["prompt"] == PROMPTS[0] + item.prefix and decoded["chosen"] == item.chosen
    nan = [v for _, i, v in _items() if isinstance(i.gap, float) and math.isnan(i.gap)][0]
    assert b'"gap": NaN' in LINES["trl"](snapshot=snapshot).line(
        ('"p"', '"query_external_id": "", "query_id": 1', None), nan
    )


def test_a_trl_line_needs_the_prompt():
    snapshot, _, _ = next(_items())
    with pytest.raises(ValueError, match="needs the prompt"):
        LINES["trl"](snapshot=snapshot).query_part(QUERIES[0], None)
    with pytest.raises(ValueError, match="unknown span 'whole'"):
        LINES["trl"](snapshot=snapshot, span="whole")


@pytest.mark.parametrize("span", SPANS)
def test_the_export_writes_the_rows_it_renders(project, make_pair, round_, span):
    """Through the database (PostgreSQL in CI): the streamed lines equal the rows training reads, encoded."""
    tool = ToolFactory(project=project, name="wetter", description='Das "Wetter" – heute\\morgen\n')
    queries = [
        QueryFactory(
            project=project,
            external_id=f'ext "{k}" \\ é',
            tools=[tool],
            messages=[{"role": "user", "content": f"Wie ist das Wetter in Köln?\n\t{k} 😀"}],
        )
        for k in range(2)
    ]
    texts = [t for t in TEXTS if "\x00" not in t]  # PostgreSQL text holds no NUL
    pairs = []
    for k, gap in enumerate([0.1, 1e-7, 3.0, 0.30000000000000004, 2.5e-320, 0.0]):
        pairs.append(
            make_pair(
                "approved" if k % 2 else "edited",
                round=round_,
                query=queries[k % 2],
                prefix=texts[k % len(texts)],
                chosen=texts[(k + 1) % len(texts)] or "x",
                rejected=texts[(k + 2) % len(texts)],
                gap=gap,
                deficiency=["", "wrong_value"][k % 2],
            )
        )
    snapshot = snapshot_freeze(project=project, round=round_)
    pairs[0].delete()  # the frozen item keeps its texts, its pair_id becomes null
    snapshot = type(snapshot).objects.get(pk=snapshot.pk)

    for fmt in FORMATS:
        lines = list(snapshot_export(snapshot, fmt, span))
        assert lines == [encode_row(row) for row in snapshot_rows(snapshot, fmt, span)]
        assert len(lines) == 6
    metadata = {m["gap"]: m for m in (json.loads(line)["metadata"] for line in snapshot_export(snapshot, "trl", span))}
    assert sorted(metadata) == sorted([0.1, 1e-7, 3.0, 0.30000000000000004, 2.5e-320, 0.0])
    assert metadata[0.1]["pair_id"] is None and metadata[3.0]["pair_id"] == pairs[2].pk
