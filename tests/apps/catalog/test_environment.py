"""The environment generator: reproducible, every kind and bucket, real outputs, well-formed answers, the CLI."""

import ast
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.environment.scenarios import DOMAINS
from apps.catalog.environment.tool_table import TOOLS
from apps.catalog.models import Query, Tool
from apps.catalog.records import KINDS
from apps.projects.models import Project

REPO = Path(__file__).resolve().parents[3]
NO_CALL_KINDS = ("irrelevance", "missing_info")
JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


@pytest.fixture(scope="module")
def env():
    return generate_environment(EnvironmentConfig())


@pytest.fixture(scope="module")
def implementations(env):
    """Each tool's function, exec'd from its stored source alone (a fresh namespace per tool)."""
    functions = {}
    for tool in env.tools:
        namespace = {}
        exec(compile(tool.implementation, f"<{tool.name}>", "exec"), namespace)
        functions[tool.name] = namespace[tool.name]
    return functions


def as_dicts(env):
    return [asdict(t) for t in env.tools], [asdict(q) for q in env.queries]


def first_values(params: dict) -> dict:
    """The arguments of a ground-truth call, taking the first acceptable value ("" = left unset)."""
    return {p: values[0] for p, values in params.items() if values[0] != ""}


# --- determinism and mix


def test_same_seed_same_environment_other_seed_differs():
    config = EnvironmentConfig(seed=7, queries=120)
    assert as_dicts(generate_environment(config)) == as_dicts(generate_environment(config))
    assert (
        as_dicts(generate_environment(EnvironmentConfig(seed=8, queries=120)))[1]
        != as_dicts(generate_environment(config))[1]
    )


def test_output_does_not_depend_on_hash_randomisation():
    """Set/dict-of-str iteration order changes with PYTHONHASHSEED; the output must not."""
    script = (
        "import hashlib, json; from dataclasses import asdict;"
        "from apps.catalog.environment import EnvironmentConfig, generate_environment;"
        "env = generate_environment(EnvironmentConfig(seed=5, queries=80));"
        "print(hashlib.sha256(json.dumps([asdict(q) for q in env.queries], sort_keys=True).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    local = generate_environment(EnvironmentConfig(seed=5, queries=80))
    expected = hashlib.sha256(json.dumps([asdict(q) for q in local.queries], sort_keys=True).encode()).hexdigest()
    assert digests == {expected}


def test_default_run_has_every_kind_bucket_and_the_eval_fraction(env):
    counts = env.counts()
    assert len(env.queries) == 200
    assert set(counts["kind"]) == set(KINDS)
    assert set(counts["difficulty"]) == {"easy", "medium", "hard"}
    assert abs(counts["split"]["eval"] / 200 - 0.2) <= 0.02
    assert {q.external_id for q in env.queries} == {f"env-0-{i:06d}" for i in range(200)}
    assert 20 <= len(env.tools) <= 25


def test_every_domain_has_tools_and_every_tool_a_domain(env):
    assert {tool.domain for tool in TOOLS} == set(DOMAINS)
    assert 8 <= len(DOMAINS) <= 10
    assert [t.name for t in env.tools] == [t.name for t in TOOLS]


def test_hop_one_and_hop_two_both_occur(env):
    hops = {q.metadata["hop"] for q in env.queries if q.kind == "multi_hop"}
    assert hops == {1, 2}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"queries": 0}, "queries must be"),
        ({"eval_fraction": 1.0}, "eval_fraction must be in [0, 1)"),
        ({"eval_fraction": -0.1}, "eval_fraction must be in [0, 1)"),
        ({"weight_parallel": -1.0}, "weight_parallel must not be negative"),
        ({**{f"weight_{k}": 0.0 for k in KINDS}}, "at least one kind weight"),
        ({"seed": "1"}, "seed must be an integer"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        EnvironmentConfig(**kwargs)


def test_zero_weight_drops_a_kind():
    env = generate_environment(EnvironmentConfig(queries=50, eval_fraction=0.0, weight_multi_hop=0.0))
    assert "multi_hop" not in env.counts()["kind"]
    assert env.counts()["split"] == {"train": 50}


# --- stage 5: implementations are real and self-contained


def test_implementations_reproduce_every_recorded_output(env, implementations):
    for tool in env.tools:
        assert "import" not in tool.implementation.split("def ", 1)[0]  # nothing before the def
    checked = 0
    for query in env.queries:
        for step in query.metadata.get("trajectory", []):
            assert implementations[step["name"]](**step["arguments"]) == step["output"]
            checked += 1
        for message in query.messages:
            if message["role"] == "tool":
                call = next(
                    c
                    for m in query.messages
                    if m.get("tool_calls")
                    for c in m["tool_calls"]
                    if c["id"] == message["tool_call_id"]
                )
                output = implementations[call["function"]["name"]](**json.loads(call["function"]["arguments"]))
                assert message["content"] == json.dumps(output)
    assert checked > 0


def test_sub_answers_appear_in_the_ground_truth_calls_outputs(env, implementations):
    """FTRL's rule: every comma-separated part of a sub-answer is in the tool's output (case-insensitive)."""
    for query in env.queries:
        outputs: dict[str, list[str]] = {}
        for call in query.ground_truth:
            ((name, params),) = call.items()
            output = implementations[name](**first_values(params))
            assert "error" not in output, (query.external_id, output)
            outputs.setdefault(name, []).append(json.dumps(output).lower())
        assert set(query.sub_answers) == set(outputs), query.external_id
        for name, answers in query.sub_answers.items():
            assert len(answers) == len(outputs[name])
            for answer, output in zip(answers, outputs[name]):
                parts = [p.strip().lower() for p in answer.split(",")]
                assert parts and all(p and p in output for p in parts), (query.external_id, answer, output)


# --- stage 3: multi-hop


def test_hop_two_argument_comes_from_the_tool_message(env):
    hop_two = [q for q in env.queries if q.kind == "multi_hop" and q.metadata["hop"] == 2]
    assert hop_two
    for query in hop_two:
        user, assistant, *tool_messages = query.messages
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert [m["tool_call_id"] for m in tool_messages] == [c["id"] for c in assistant["tool_calls"]]
        trajectory = query.metadata["trajectory"]
        assert [c["function"]["name"] for c in assistant["tool_calls"]] == [s["name"] for s in trajectory[:-1]]
        ((name, params),) = query.ground_truth[0].items()
        assert name == trajectory[-1]["name"] and len(query.ground_truth) == 1
        for link in query.metadata["links"]:
            found = json.loads(tool_messages[link["call"]]["content"])[link["key"]]
            assert params[link["param"]] == [found]


def test_hop_one_ground_truth_is_the_feeder_calls(env):
    hop_one = [q for q in env.queries if q.kind == "multi_hop" and q.metadata["hop"] == 1]
    assert hop_one
    for query in hop_one:
        assert [m["role"] for m in query.messages] == ["user"]
        feeders = query.metadata["trajectory"][:-1]
        assert [(name, first_values(p)) for call in query.ground_truth for name, p in call.items()] == [
            (s["name"], s["arguments"]) for s in feeders
        ]


# --- ground truth and reference output


def test_ground_truth_names_offered_tools_and_their_parameters(env):
    for query in env.queries:
        offered = {t.name: t.parameters for t in query.tools}
        if query.kind in NO_CALL_KINDS:
            assert query.ground_truth == []
            continue
        assert query.ground_truth
        for call in query.ground_truth:
            ((name, params),) = call.items()
            schema = offered[name]
            assert set(params) <= set(schema["properties"])
            for required in schema["required"]:
                assert params[required][0] != "", (query.external_id, name, required)
            for param, values in params.items():
                spec = schema["properties"][param]
                for value in values:
                    if value == "" and param not in schema["required"]:
                        continue
                    assert isinstance(value, JSON_TYPES[spec["type"]]), (name, param, value)
                    assert spec["type"] == "boolean" or not isinstance(value, bool)
                    assert "enum" not in spec or value in spec["enum"]


def test_kinds_have_their_shape(env):
    for query in env.queries:
        for call in query.ground_truth:
            if "days_between" in call:  # two dates in one request are drawn in calendar order
                assert call["days_between"]["start_date"][0] < call["days_between"]["end_date"][0]
        names = [name for call in query.ground_truth for name in call]
        offered = [t.name for t in query.tools]
        if query.kind == "single":
            assert len(names) == 1 and len(offered) <= 2
        elif query.kind == "multiple":
            assert len(names) == 1 and 3 <= len(offered) <= 5
        elif query.kind == "parallel":
            assert 2 <= len(names) <= 3 and len(set(names)) == 1
            assert len({json.dumps(c, sort_keys=True) for c in query.ground_truth}) == len(names)
        elif query.kind == "parallel_multiple":
            assert len(names) == 2 and len(set(names)) == 2
        elif query.kind == "irrelevance":
            unoffered = query.metadata["unoffered_tool"]
            assert unoffered not in offered and query.reference_output and "(" not in query.reference_output
        elif query.kind == "missing_info":
            tool = next(t for t in query.tools if t.name == query.metadata["tool"])
            assert query.metadata["missing"] in tool.parameters["required"]
            assert query.reference_output.endswith("?")


def test_reference_output_is_the_ground_truth_as_a_call_list(env):
    for query in env.queries:
        if query.kind in NO_CALL_KINDS:
            continue
        tree = ast.parse(query.reference_output, mode="eval").body
        assert isinstance(tree, ast.List)
        calls = []
        for node in tree.elts:
            assert isinstance(node, ast.Call) and not node.args
            calls.append((node.func.id, {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}))
        expected = [(name, first_values(params)) for call in query.ground_truth for name, params in call.items()]
        assert calls == expected, query.external_id


# --- the command


def run_command(*args):
    out = StringIO()
    call_command("generate_environment", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_command_writes_the_queries_and_is_idempotent():
    output = run_command("--project", "gen", "--seed", "3", "--queries", "40", "--eval-fraction", "0.25")
    project = Project.objects.get(name="gen")
    assert "Created project 'gen'" in output and "Queries: 40 new, 0 already present" in output
    assert Query.objects.filter(project=project, source="generated").count() == 40
    assert Query.objects.filter(project=project, split="eval").count() == 10
    expected = generate_environment(EnvironmentConfig(seed=3, queries=40, eval_fraction=0.25))
    stored = {q.external_id: q for q in Query.objects.filter(project=project)}
    for spec in expected.queries:
        row = stored[spec.external_id]
        assert (row.kind, row.split, row.difficulty_bucket) == (spec.kind, spec.split, spec.difficulty_bucket)
        assert [qt.tool.name for qt in row.query_tools.order_by("position")] == [t.name for t in spec.tools]
    assert all(t.implementation.startswith(f"def {t.name}(") for t in Tool.objects.filter(project=project))
    tools = Tool.objects.count()

    again = run_command("--project", "gen", "--seed", "3", "--queries", "40", "--eval-fraction", "0.25")
    assert "Created project" not in again and "Queries: 0 new, 40 already present" in again
    assert "Tools: 0 new" in again
    assert Query.objects.count() == 40 and Tool.objects.count() == tools


@pytest.mark.django_db
def test_command_uses_an_existing_project(project):
    output = run_command("--project", project.name, "--queries", "5")
    assert "Created project" not in output
    assert project.queries.count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--queries", "0"], "queries must be"),
        (["--eval-fraction", "1"], "eval_fraction must be in"),
        (["--eval-fraction", "-0.5"], "eval_fraction must be in"),
    ],
)
def test_command_rejects_bad_arguments_and_writes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run_command("--project", "bad", *args)
    assert not Project.objects.filter(name="bad").exists()
    assert Query.objects.count() == 0 and Tool.objects.count() == 0


@pytest.mark.django_db
def test_command_refuses_other_queries_under_the_same_ids():
    run_command("--project", "gen", "--seed", "1", "--queries", "10")
    with pytest.raises(CommandError, match="already imported with different content"):
        run_command("--project", "gen", "--seed", "1", "--queries", "12")
    assert Query.objects.count() == 10
