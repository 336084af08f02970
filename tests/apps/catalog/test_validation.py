"""What the database cannot hold is refused at import, naming line and field, before anything is written:
NUL characters in any text (tool descriptions and schemas too), ids longer than the column, ids that are lists,
NaN or booleans, NaN anywhere, values nested absurdly deep."""

import json
import math

import pytest

from apps.catalog.models import Query, QueryTool, Tool
from apps.catalog.records import RecordError
from apps.catalog.services import import_file

from .test_importers import TIME, WEATHER, openai_record, toolace_record, write_jsonl

GOOD = openai_record([], qid="good")


def with_tool(**changes):
    return openai_record([], qid="bad") | {"tools": [{"type": "function", "function": TIME | changes}]}


def nested(levels: int):
    value = "x"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "bad, field",
    [
        (with_tool(description="Local time.\x00"), "tools[0].function.description"),
        (
            with_tool(parameters={"type": "object", "properties": {"tz\x00": {"type": "string"}}}),
            "tools[0].function.parameters.properties.tz\\u0000",
        ),
        (
            with_tool(
                parameters={"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "a\x00"]}}}
            ),
            "tools[0].function.parameters.properties.tz.enum[1]",
        ),
        (with_tool(name="get_time\x00"), "tools[0].function.name"),
        (with_tool(name="t" * 256), "tools[0].function.name"),
        (openai_record([], qid="x" * 5000), "id"),
        (openai_record([], qid="a\x00b"), "id"),
        (openai_record([], qid=["a", "b"]), "id"),
        (openai_record([], qid={"n": 1}), "id"),
        (openai_record([], qid=math.nan), "id"),
        (openai_record([], qid=True), "id"),
        (openai_record([], qid=1.5), "id"),
        (
            openai_record([{"function": {"name": "get_time", "arguments": {"tz": math.inf}}}], qid="inf"),
            "ground_truth[0].get_time.tz[0]",
        ),
        (
            openai_record([], qid="deep") | {"messages": [{"role": "user", "content": "hi", "extra": nested(200)}]},
            "messages[0].extra",
        ),
        (
            openai_record([], qid="k") | {"messages": [{"role": "user", "content": "hi", "name\x00": "x"}]},
            "messages[0].name\\u0000",
        ),
    ],
)
def test_what_the_database_cannot_hold_is_refused(project, tmp_path, bad, field):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n")  # json.dumps writes NaN and Infinity
    with pytest.raises(RecordError) as info:
        import_file(project=project, path=path, fmt="openai")
    assert (info.value.line, info.value.field) == (2, field)
    assert "\x00" not in str(info.value)
    assert Query.objects.count() == Tool.objects.count() == QueryTool.objects.count() == 0


def test_nul_in_a_toolace_tool_description_is_refused(project, tmp_path):
    record = toolace_record(tools=(WEATHER | {"description": "Weather\x00"}, TIME))
    with pytest.raises(RecordError) as info:
        import_file(project=project, path=write_jsonl(tmp_path / "t.jsonl", [toolace_record(), record]), fmt="toolace")
    assert (info.value.line, info.value.field) == (2, "system.tools[0].description")
    assert Query.objects.count() == 0


def test_integer_and_long_but_fitting_ids_are_kept(project, tmp_path):
    fitting = "y" * (255 - len("openai:"))
    path = write_jsonl(tmp_path / "ok.jsonl", [openai_record([], qid=7), openai_record([], qid=fitting)])
    assert import_file(project=project, path=path, fmt="openai").created == 2
    assert set(Query.objects.values_list("external_id", flat=True)) == {"openai:7", f"openai:{fitting}"}
