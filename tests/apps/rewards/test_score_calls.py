"""The score_calls command: a file of mixed formats in, one verdict per line out, a summary on stderr."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

TOOLS_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    }
]
TOOLS_BFCL = [
    {
        "name": "get_time",
        "description": "",
        "parameters": {"type": "dict", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    }
]
TRUTH = [{"get_time": {"tz": ["UTC"]}}]


def line(i, output, tools=TOOLS_OPENAI, truth=TRUTH):
    return json.dumps(
        {
            "id": i,
            "messages": [{"role": "user", "content": "time?"}],
            "tools": tools,
            "ground_truth": truth,
            "output": output,
        }
    )


LINES = [
    line("python", "[get_time(tz='UTC')]"),
    line("bfcl-tools", "[get_time(tz='utc')]", tools=TOOLS_BFCL),
    line("json", '{"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}'),
    line("hermes", '<tool_call>{"name": "get_time", "arguments": {"tz": "Asia/Tokyo"}}</tool_call>'),
    line(
        "openai-message",
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}
            ],
        },
    ),
    line("prose", "It is noon."),
    line("irrelevant-ok", "I can't help with that.", truth=[]),
    '{"id": "broken", "tools": [oops',
    json.dumps({"id": "no-truth", "tools": TOOLS_OPENAI, "output": "x"}),
    json.dumps(["not", "an", "object"]),
    "",
]


@pytest.fixture
def scored(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(LINES) + "\n")
    out = tmp_path / "out.jsonl"
    call_command("score_calls", "--input", str(src), "--output", str(out))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    return {r["id"] if r["id"] is not None else f"#{i}": r for i, r in enumerate(rows)}, capsys.readouterr().err


def test_mixed_formats(scored):
    rows, _ = scored
    for ok in ("python", "bfcl-tools", "json", "openai-message", "irrelevant-ok"):
        assert rows[ok]["valid"] is True, rows[ok]
    assert rows["hermes"]["deficiency"] == "wrong_value"
    assert rows["prose"]["deficiency"] == "no_call"
    assert rows["python"]["calls"] == [{"name": "get_time", "arguments": {"tz": "UTC"}}]
    assert set(rows["python"]) == {"id", "valid", "deficiency", "detail", "reward", "calls"}


def test_bad_lines_get_bad_input_and_the_run_goes_on(scored):
    rows, err = scored
    assert rows["broken"]["deficiency"] == "bad_input" and "line 8: invalid JSON" in rows["broken"]["detail"]
    assert rows["no-truth"]["deficiency"] == "bad_input" and "missing ground_truth" in rows["no-truth"]["detail"]
    assert any(r["deficiency"] == "bad_input" and "expected a JSON object" in r["detail"] for r in rows.values())
    assert len(rows) == 10  # the blank line is skipped
    assert "10 scored: 5 valid (50.0%)" in err and "bad_input 3" in err


def test_span_and_grade_on_request(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(line("x", "[get_time(tz='Mars')]") + "\n")
    call_command("score_calls", "--input", str(src), "--with-span")
    row = json.loads(capsys.readouterr().out)
    assert row["span"] == [13, 19] and row["grade"] == "acceptable"


def test_unreadable_input_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("score_calls", "--input", str(tmp_path / "missing.jsonl"))


def test_rule_option_scores_a_broken_attempt_on_a_no_call_query(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(
        line("broken", "[get_time(tz='UTC'", truth=[]) + "\n" + line("text", "No tool fits.", truth=[]) + "\n"
    )
    call_command("score_calls", "--input", str(src))  # strict by default
    captured = capsys.readouterr()
    strict = [json.loads(x) for x in captured.out.splitlines()]
    assert [(r["valid"], r["deficiency"]) for r in strict] == [(False, "malformed"), (True, "")]
    assert "(rule: strict)" in captured.err
    call_command("score_calls", "--input", str(src), "--rule", "bfcl")
    captured = capsys.readouterr()
    assert [json.loads(x)["valid"] for x in captured.out.splitlines()] == [True, True]
    assert "(rule: bfcl)" in captured.err
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("score_calls", "--input", str(src), "--rule", "lenient")
