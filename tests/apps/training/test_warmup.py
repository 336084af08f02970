"""Round 0: the warm-up SFT trains the tiny policy easy → medium → hard and evaluates it."""

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from transformers import AutoModelForCausalLM

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.services import records_write
from apps.training.models import Checkpoint, EvalRun, TrainingRound


@pytest.fixture
def project_with_policy(project, tiny_model_dir, settings, tmp_path):
    settings.CHECKPOINT_DIR = tmp_path / "checkpoints"
    records_write(
        project=project,
        records=generate_environment(EnvironmentConfig(seed=2, queries=30)).queries,
        source="generated",
        split="train",
    )
    Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    return project


def test_warmup_trains_registers_and_evaluates(project_with_policy, tiny_model_dir, capsys):
    call_command("warmup", project=project_with_policy.name, epochs=1, learning_rate=1e-3, batch_size=8)
    rnd = TrainingRound.objects.get(project=project_with_policy, number=0)
    assert rnd.state == "done" and rnd.algorithm == "sft"
    out = rnd.policy_out
    assert out.kind == "sft" and out.parent.path == str(tiny_model_dir) and out.round == rnd
    buckets = [b["bucket"] for b in out.config["buckets"]]
    assert buckets == sorted(buckets, key=["easy", "medium", "hard"].index) and len(buckets) >= 2
    # cumulative curriculum: each stage sees at least as many examples as the one before
    sizes = [b["examples"] for b in out.config["buckets"]]
    assert sizes == sorted(sizes)
    before = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out.path).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    run = EvalRun.objects.get(checkpoint=out)
    assert run.status == "done" and run.metrics["n"] == run.n_queries > 0
    assert 0.0 <= run.metrics["pass_rate"] <= 1.0 and set(run.metrics["by_kind"])
    assert rnd.metrics["eval"]["pass_rate"] == run.metrics["pass_rate"]
    assert "round 0 done: eval pass@1" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already done"):
        call_command("warmup", project=project_with_policy.name)


def test_warmup_needs_a_policy(project):
    with pytest.raises(CommandError, match="no base checkpoint"):
        call_command("warmup", project=project.name)


def test_warmup_step_budget_and_eval_limit(project_with_policy):
    call_command(
        "warmup",
        project=project_with_policy.name,
        max_steps=4,
        batch_size=4,
        eval_limit=3,
        lr_scheduler="cosine",
        adam_beta2=0.95,
    )
    rnd = TrainingRound.objects.get(project=project_with_policy, number=0)
    assert sum(b["steps"] for b in rnd.policy_out.config["buckets"]) == 4
    assert rnd.policy_out.config["config"]["adam_beta2"] == 0.95
    assert EvalRun.objects.get(checkpoint=rnd.policy_out).n_queries == 3 == rnd.metrics["eval"]["n"]


@pytest.mark.parametrize(
    "opts, message",
    [({"eval_limit": 0}, "--eval-limit must be at least 1"), ({"max_steps": 0}, "max_steps must be -1")],
)
def test_bad_warmup_options_write_nothing(project_with_policy, opts, message):
    with pytest.raises(CommandError, match=message):
        call_command("warmup", project=project_with_policy.name, **opts)
    assert not TrainingRound.objects.filter(project=project_with_policy).exists()
