"""Importers: each format on good files, and on each kind of bad file (nothing written)."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.catalog.importers.bfcl import KIND_BY_CATEGORY, NO_ANSWER, category_of
from apps.catalog.models import Query, QueryTool, Tool
from apps.catalog.records import RecordError
from apps.catalog.services import import_file
from apps.projects.models import Project

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "dict",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "scale": {"type": "float"}},
        "required": ["city"],
    },
}
TIME = {
    "name": "get_time",
    "description": "Local time.",
    "parameters": {"type": "dict", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def toolace_record(answer="[get_weather(city='Paris', days=3)]", tools=(WEATHER, TIME)):
    system = (
        "You are an expert in composing functions. Here is a list of functions in JSON format that you can "
        f"invoke:\n{json.dumps(list(tools))}. Should you decide to invoke any of the function(s), put it in the "
        "format of [func1(params_name=params_value)]."
    )
    return {
        "system": system,
        "conversations": [
            {"from": "user", "value": "Weather in Paris for 3 days?"},
            {"from": "assistant", "value": answer},
            {"from": "tool", "value": '[{"name": "get_weather", "results": {"temp": 21}}]'},
            {"from": "assistant", "value": "It will be 21 degrees."},
        ],
    }


def openai_record(expected, qid="q1"):
    return {
        "id": qid,
        "messages": [{"role": "user", "content": "What time is it in Tokyo and in Paris?"}],
        "tools": [{"type": "function", "function": TIME}],
        "expected": expected,
    }


FTRL_CODE = "def get_time(tz):\n    return {'tz': tz, 'time': '12:00'}\n"


def ftrl_record():
    return {
        "messages": [{"role": "user", "content": "Time in Tokyo?"}],
        "tools": [{"type": "function", "function": TIME}],
        "codes": {"get_time": FTRL_CODE},
        "unsolved_set": {"get_time": ["Tokyo, 12:00"]},
        "answer": "12:00",
    }


# --- good files --------------------------------------------------------------------------------


def test_toolace_one_query_per_calling_turn(project, tmp_path):
    path = write_jsonl(tmp_path / "toolace.jsonl", [toolace_record(), toolace_record(answer="I cannot help.")])
    counts = import_file(project=project, path=path, fmt="toolace")
    assert counts.created == 2
    call = Query.objects.get(kind="single")
    # the optional parameter the reference leaves out may be left out
    assert call.ground_truth == [{"get_weather": {"city": ["Paris"], "days": [3], "scale": [""]}}]
    assert [m["role"] for m in call.messages] == ["system", "user"]
    assert "get_weather" not in call.messages[0]["content"]  # the tool list is stored as tools, not repeated
    assert call.reference_output == "[get_weather(city='Paris', days=3)]"
    assert [t.name for t in call.ordered_tools()] == ["get_weather", "get_time"]
    weather = Tool.objects.get(name="get_weather")
    # BFCL/ToolACE python type names become JSON schema types
    assert weather.parameters["type"] == "object"
    assert weather.parameters["properties"]["scale"]["type"] == "number"
    no_call = Query.objects.get(kind="irrelevance")
    assert no_call.ground_truth == []


def test_toolace_json_array_file(project, tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([toolace_record(), toolace_record("[get_time(tz='UTC')]")]))
    assert import_file(project=project, path=path, fmt="toolace").created == 2
    assert Tool.objects.count() == 2  # the same two tools, stored once


def test_openai_arguments_as_json_string_or_object(project, tmp_path):
    calls = [
        {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Asia/Tokyo"}'}},
        {"type": "function", "function": {"name": "get_time", "arguments": {"tz": "Europe/Paris"}}},
    ]
    path = write_jsonl(tmp_path / "o.jsonl", [openai_record(calls), openai_record([], qid="q2")])
    import_file(project=project, path=path, fmt="openai", split="eval")
    q = Query.objects.get(external_id="openai:q1")
    assert q.kind == "parallel" and q.split == "eval"
    assert q.ground_truth == [{"get_time": {"tz": ["Asia/Tokyo"]}}, {"get_time": {"tz": ["Europe/Paris"]}}]
    assert q.reference_output == "[get_time(tz='Asia/Tokyo'), get_time(tz='Europe/Paris')]"
    assert Query.objects.get(external_id="openai:q2").ground_truth == []


def test_ftrl_keeps_implementations_and_sub_answers(project, tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", [ftrl_record()])
    import_file(project=project, path=path, fmt="ftrl")
    q = Query.objects.get()
    assert q.ground_truth is None
    assert q.sub_answers == {"get_time": ["Tokyo, 12:00"]}
    assert q.final_answer == "12:00"
    assert Tool.objects.get().implementation == FTRL_CODE


@pytest.mark.parametrize(
    "category, kind",
    [("simple_python", "single"), ("parallel_multiple", "parallel_multiple"), ("live_irrelevance", "irrelevance")],
)
def test_bfcl_real_categories(project, bfcl_data, category, kind):
    path = bfcl_data / f"BFCL_v4_{category}.json"
    n_records = sum(1 for line in path.open() if line.strip())
    counts = import_file(project=project, path=path, fmt="bfcl", split="eval")
    assert counts.created == n_records == Query.objects.filter(kind=kind, split="eval").count()
    first = json.loads(path.open().readline())
    q = Query.objects.get(external_id=f"bfcl:{first['id']}")
    assert q.messages == first["question"][0]
    if kind == "irrelevance":
        assert q.ground_truth == []
    else:
        answers = {
            json.loads(line)["id"]: json.loads(line)["ground_truth"]
            for line in (bfcl_data / "possible_answer" / path.name).open()
        }
        assert q.ground_truth == answers[first["id"]]
    stored_types = {json.dumps(t.parameters) for t in Tool.objects.all()}
    assert not any('"type": "dict"' in s or '"type": "float"' in s or '"type": "tuple"' in s for s in stored_types)


@pytest.mark.parametrize("category", sorted(KIND_BY_CATEGORY))
def test_bfcl_every_single_turn_category_imports_exactly(project, bfcl_data, category):
    """Every record, its question and its possible answers as the files have them (the ToolACE name and
    default rules never touch BFCL's data)."""
    path = bfcl_data / f"BFCL_v4_{category}.json"
    records = [json.loads(line) for line in path.open() if line.strip()]
    counts = import_file(project=project, path=path, fmt="bfcl", split="eval")
    assert counts.created == len(records) == Query.objects.count()
    answers = {}
    if category not in NO_ANSWER:
        answers = {
            json.loads(line)["id"]: json.loads(line)["ground_truth"]
            for line in (bfcl_data / "possible_answer" / path.name).open()
            if line.strip()
        }
    stored = {q.external_id: q for q in Query.objects.all()}
    for record in records:
        query = stored[f"bfcl:{record['id']}"]
        assert query.messages == record["question"][0]
        expected = answers.get(record["id"], [] if category != "live_relevance" else None)
        assert query.ground_truth == expected, record["id"]
        assert query.kind == KIND_BY_CATEGORY[category]


def test_reimport_changes_nothing(project, tmp_path):
    path = write_jsonl(tmp_path / "o.jsonl", [openai_record([]), openai_record([], qid="q2")])
    import_file(project=project, path=path, fmt="openai")
    before = list(Query.objects.values_list("pk", "content_hash").order_by("pk"))
    again = import_file(project=project, path=path, fmt="openai")
    assert (again.created, again.unchanged, again.tools_created) == (0, 2, 0)
    assert list(Query.objects.values_list("pk", "content_hash").order_by("pk")) == before


def test_progress_reports_bytes_to_the_end(project, tmp_path):
    path = write_jsonl(tmp_path / "o.jsonl", [openai_record([], qid=f"q{i}") for i in range(5)])
    seen = []
    import_file(project=project, path=path, fmt="openai", progress=seen.append)
    size = path.stat().st_size
    assert seen[-1] == {"done": size, "total": size}
    assert {p["total"] for p in seen} == {size}
    assert [p["done"] for p in seen] == sorted(p["done"] for p in seen)


# --- bad files: a clear error naming line and field, and nothing written -------------------------

GOOD = openai_record([], qid="good")


@pytest.mark.parametrize(
    "fmt, records, line, field_part",
    [
        ("openai", [GOOD, GOOD | {"id": "g2"}, '{"messages": [}'], 3, "json"),
        ("openai", [GOOD, GOOD | {"id": "g2", "messages": "hello"}], 2, "messages"),
        ("openai", [GOOD, '"just a string"'], 2, "record"),
        ("openai", [GOOD, GOOD | {"id": "g2", "messages": [{"role": "robot", "content": "x"}]}], 2, "messages[0].role"),
        (
            "openai",
            [GOOD, GOOD | {"id": "g2", "tools": [{"type": "function", "function": {"description": "no name"}}]}],
            2,
            "tools[0].function.name",
        ),
        (
            "openai",
            [GOOD, openai_record([{"function": {"name": "get_date", "arguments": "{}"}}], qid="g2")],
            2,
            "ground_truth[0]",
        ),
        (
            "openai",
            [GOOD, openai_record([{"function": {"name": "get_time", "arguments": "{tz"}}], qid="g2")],
            2,
            "expected[0].function.arguments",
        ),
        (
            "openai",
            [
                GOOD,
                GOOD
                | {
                    "id": "g2",
                    "tools": [
                        {"type": "function", "function": TIME},
                        {"type": "function", "function": {**TIME, "description": "other"}},
                    ],
                },
            ],
            2,
            "tools[1]",
        ),
        (
            "openai",
            [
                GOOD,
                GOOD
                | {
                    "id": "g2",
                    "tools": [
                        {
                            "type": "function",
                            "function": {
                                **TIME,
                                "parameters": {"type": "object", "properties": {"tz": {"type": "strnig"}}},
                            },
                        }
                    ],
                },
            ],
            2,
            "properties.tz.type",
        ),
        (
            "toolace",
            [toolace_record(), toolace_record(answer="[get_weather(city='Paris'")],
            2,
            "conversations[1].value",
        ),
        ("toolace", [toolace_record(), {"system": "no tools here", "conversations": []}], 2, "system"),
        ("ftrl", [ftrl_record(), ftrl_record() | {"codes": {"get_time": "def get_time(:"}}], 2, "codes.get_time"),
        ("ftrl", [ftrl_record(), ftrl_record() | {"unsolved_set": {"get_date": ["x"]}}], 2, "unsolved_set.get_date"),
        ("openai", [GOOD, GOOD | {"id": "g2", "messages": [{"role": "user", "content": "a\x00b"}]}], 2, "messages"),
    ],
    ids=[
        "malformed-json",
        "wrong-type",
        "not-an-object",
        "bad-role",
        "tool-without-name",
        "unknown-tool-in-truth",
        "bad-arguments-json",
        "duplicate-tool-name",
        "unknown-schema-type",
        "bad-call-list",
        "no-tools-in-system",
        "ftrl-bad-code",
        "ftrl-unknown-tool",
        "nul-character",
    ],
)
def test_bad_record_names_line_and_field_and_writes_nothing(project, tmp_path, fmt, records, line, field_part):
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(RecordError) as info:
        import_file(project=project, path=path, fmt=fmt)
    assert info.value.line == line
    assert field_part in info.value.field
    assert Query.objects.count() == 0 and Tool.objects.count() == 0 and QueryTool.objects.count() == 0


def test_changed_record_under_a_known_id_is_refused(project, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [openai_record([], qid="same")])
    import_file(project=project, path=tmp_path / "a.jsonl", fmt="openai")
    changed = openai_record([{"function": {"name": "get_time", "arguments": {"tz": "UTC"}}}], qid="same")
    write_jsonl(tmp_path / "b.jsonl", [openai_record([], qid="new"), changed])
    with pytest.raises(RecordError, match="already imported with different content"):
        import_file(project=project, path=tmp_path / "b.jsonl", fmt="openai")
    assert list(Query.objects.values_list("external_id", flat=True)) == ["openai:same"]


def test_bfcl_missing_answer_file(project, tmp_path, bfcl_data):
    path = tmp_path / "BFCL_v4_simple_python.json"
    path.write_text((bfcl_data / path.name).read_text())
    with pytest.raises(RecordError, match="missing answer file"):
        import_file(project=project, path=path, fmt="bfcl")
    assert Query.objects.count() == 0


def test_bfcl_refuses_multi_turn_and_unknown_files(tmp_path, bfcl_data):
    with pytest.raises(RecordError, match="not a supported BFCL category"):
        category_of(bfcl_data / "BFCL_v4_multi_turn_base.json")
    with pytest.raises(RecordError, match="not a supported BFCL category"):
        category_of(tmp_path / "questions.json")


def test_missing_file_and_unknown_format(project, tmp_path):
    with pytest.raises(RecordError, match="does not exist"):
        import_file(project=project, path=tmp_path / "nope.jsonl", fmt="openai")
    with pytest.raises(ValueError, match="unknown format"):
        import_file(project=project, path=tmp_path / "nope.jsonl", fmt="csv")


# --- the command -------------------------------------------------------------------------------


def test_import_data_command(tmp_path, db, capsys):
    path = write_jsonl(tmp_path / "o.jsonl", [openai_record([], qid=f"q{i}") for i in range(3)])
    call_command("import_data", str(path), "--format", "openai", "--project", "cli", "--split", "eval")
    out = capsys.readouterr().out
    assert "3 records read: 3 queries created, 0 already present" in out
    assert Query.objects.filter(project__name="cli", split="eval").count() == 3


def test_import_data_command_bad_file_creates_nothing(tmp_path, db):
    path = write_jsonl(tmp_path / "o.jsonl", [GOOD, "{oops"])
    with pytest.raises(CommandError, match=r"line 2: json: invalid JSON.*nothing was imported"):
        call_command("import_data", str(path), "--format", "openai", "--project", "cli")
    assert not Project.objects.filter(name="cli").exists()
    assert Query.objects.count() == 0


def test_duplicate_ids_within_and_across_batches(project, tmp_path, monkeypatch):
    from apps.catalog import services

    monkeypatch.setattr(services, "BATCH", 2)
    same = openai_record([], qid="dup")
    records = [same, same, openai_record([], qid="x"), same]  # in one batch, then in a later one
    path = write_jsonl(tmp_path / "d.jsonl", records)
    counts = import_file(project=project, path=path, fmt="openai")
    assert (counts.created, counts.unchanged) == (2, 2)
    changed = openai_record([{"function": {"name": "get_time", "arguments": {"tz": "UTC"}}}], qid="dup")
    path = write_jsonl(tmp_path / "e.jsonl", [openai_record([], qid="y"), openai_record([], qid="z"), changed])
    with pytest.raises(RecordError, match="line 3: id:.*different content"):
        import_file(project=project, path=path, fmt="openai")
    assert Query.objects.count() == 2
