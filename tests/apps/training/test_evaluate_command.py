"""`evaluate`: a checkpoint scored on the eval split outside a round — here on BFCL v4 categories imported from
the bfcl-eval package's data, with the real tiny model."""

import dataclasses
import itertools
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.catalog.services import import_file, records_write
from apps.training.models import Checkpoint, EvalRun

CATEGORIES = {"simple_python": 4, "parallel": 3, "irrelevance": 3}


def _bfcl_subset(bfcl_data, tmp_path, category: str, n: int):
    """The first n records of a BFCL category file (and of its possible answers) under the file's own name."""
    (tmp_path / "possible_answer").mkdir(exist_ok=True)
    name = f"BFCL_v4_{category}.json"
    lines = list(itertools.islice((bfcl_data / name).open(), n))
    (tmp_path / name).write_text("".join(lines))
    answers = bfcl_data / "possible_answer" / name
    if answers.exists():
        ids = {json.loads(line)["id"] for line in lines}
        kept = [line for line in answers.open() if json.loads(line)["id"] in ids]
        (tmp_path / "possible_answer" / name).write_text("".join(kept))
    return tmp_path / name


@pytest.fixture
def bfcl_project(project, bfcl_data, tmp_path, tiny_model_dir):
    from apps.catalog.environment import EnvironmentConfig, generate_environment

    for category, n in CATEGORIES.items():
        import_file(project=project, path=_bfcl_subset(bfcl_data, tmp_path, category, n), fmt="bfcl", split="eval")
    generated = generate_environment(EnvironmentConfig(seed=1, queries=8)).queries[:4]
    records_write(
        project=project,
        records=[dataclasses.replace(q, split="eval") for q in generated],
        source="generated",
        split="eval",
    )
    return project, Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")


def test_scores_each_bfcl_category_and_stores_the_run(bfcl_project, capsys):
    project, policy = bfcl_project
    call_command("evaluate", project=project.name, checkpoint=str(policy.pk), source="bfcl")
    out = capsys.readouterr().out
    run = EvalRun.objects.get(checkpoint=policy)
    assert run.status == "done" and run.split == "eval:bfcl" and run.n_queries == 10
    by_category = run.metrics["by_category"]
    assert {c: f["n"] for c, f in by_category.items()} == CATEGORIES
    assert run.metrics["n"] == 10
    assert run.metrics["solve_n"] == 0 and run.metrics["solve_f1"] is None  # BFCL ships no tool code to run
    passed = sum(round(f["pass_rate"] * f["n"]) for f in by_category.values())
    assert passed == round(run.metrics["pass_rate"] * 10)
    for category, n in CATEGORIES.items():
        assert f"BFCL category {category}: " in out and f"(n={n})" in out
    assert f"(BFCL rule {run.metrics['pass_rate_bfcl']:.1%}; over-refusal" in out
    assert all(f["pass_rate_bfcl"] >= f["pass_rate"] for f in by_category.values())
    assert run.results.count() == 10  # each answer stored with its verdicts


def test_without_a_source_every_eval_query_counts_and_generated_ones_get_solve_f1(bfcl_project, capsys):
    project, policy = bfcl_project
    call_command("evaluate", project=project.name)  # latest checkpoint
    run = EvalRun.objects.get(checkpoint=policy)
    assert run.split == "eval" and run.metrics["n"] == 14
    assert run.metrics["solve_n"] == 4 and 0 <= run.metrics["solve_f1"] <= 1  # the generated tools run
    assert sum(f["n"] for f in run.metrics["by_category"].values()) == 10  # only BFCL queries have a category
    assert "Solve-F1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "options, message",
    [
        ({"source": "toolace"}, "no eval query with a ground truth from source 'toolace' (sources: bfcl, generated)"),
        ({"checkpoint": "999999"}, "has no checkpoint '999999'"),
        ({"checkpoint": "best"}, "has no checkpoint 'best'"),
        ({"limit": 0}, "--limit must be at least 1"),
    ],
)
def test_bad_options_are_refused_and_store_nothing(bfcl_project, options, message):
    project, _ = bfcl_project
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("evaluate", project=project.name, **options)
    assert not EvalRun.objects.exists()


def test_unknown_project(db):
    with pytest.raises(CommandError, match="no project named 'nope'"):
        call_command("evaluate", project="nope")


def test_latest_checkpoint_is_never_an_arms(project, tmp_path):
    from apps.training.models import Checkpoint
    from apps.training.selectors import checkpoint_latest

    loop = Checkpoint.objects.create(project=project, name="round 1", path=str(tmp_path), kind="preference")
    Checkpoint.objects.create(
        project=project, name="arm sft seed 0", path=str(tmp_path), kind="sft", config={"arm": "sft", "seed": 0}
    )
    assert checkpoint_latest(project=project) == loop
