"""`manage.py build_tiny_model`: builds the tiny policy from a project's queries and registers the checkpoint."""

import pytest
from django.core.management import CommandError, call_command
from transformers import AutoModelForCausalLM, AutoTokenizer

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.services import records_write
from apps.training.models import Checkpoint
from tests.factories import ProjectFactory


@pytest.fixture
def project_with_queries(project):
    records = generate_environment(EnvironmentConfig(seed=0, queries=30)).queries
    records_write(project=project, records=records, source="generated", split="train")
    return project


@pytest.mark.django_db
def test_builds_the_model_and_registers_the_checkpoint(project_with_queries, tmp_path, capsys):
    output = tmp_path / "tiny"
    call_command("build_tiny_model", project=project_with_queries.name, output=str(output), size="nano", seed=3)
    checkpoint = Checkpoint.objects.get(project=project_with_queries)
    assert checkpoint.kind == Checkpoint.Kind.TINY
    assert checkpoint.path == str(output.resolve())
    assert checkpoint.name == "tiny-nano-seed3"
    model = AutoModelForCausalLM.from_pretrained(checkpoint.path)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
    assert checkpoint.config["parameters"] == model.num_parameters()
    assert checkpoint.config["vocab_size"] == len(tokenizer)
    assert checkpoint.config["size"] == "nano" and checkpoint.config["seed"] == 3
    assert checkpoint.config["train_queries"] == project_with_queries.queries.filter(split="train").count()
    assert tokenizer.chat_template
    assert f"Registered checkpoint #{checkpoint.pk} 'tiny-nano-seed3'" in capsys.readouterr().out
    # Building again into the same folder updates that checkpoint instead of adding another.
    call_command(
        "build_tiny_model", project=project_with_queries.name, output=str(output), size="nano", seed=4, name="again"
    )
    assert Checkpoint.objects.filter(project=project_with_queries).count() == 1
    assert Checkpoint.objects.get(project=project_with_queries).name == "again"


@pytest.mark.django_db
def test_unknown_project_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="unknown project 'nope'"):
        call_command("build_tiny_model", project="nope", output=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


@pytest.mark.django_db
def test_project_without_queries_is_an_error(tmp_path):
    ProjectFactory(name="empty")
    with pytest.raises(CommandError, match="project 'empty' has no train queries"):
        call_command("build_tiny_model", project="empty", output=str(tmp_path / "x"))
    assert not Checkpoint.objects.exists()
