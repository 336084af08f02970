"""Training as a launched job: the spec file, `accelerate launch` on 1 and 2 CPU processes (gloo), progress,
cancel, kill -> resume, failures and bad input."""

import json
import signal
import sys
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from apps.catalog.environment import EnvironmentConfig, generate_environment
from workers.llm.tiny import render_prompt
from workers.train.common import last_checkpoint
from workers.train.job import (
    RESULT_FILE,
    JobSpec,
    SpecError,
    checker_reward,
    read_spec,
    run_spec,
    write_spec,
)
from workers.train.launch import JobFailed, LaunchError, launch_command, run_job

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the job's processes share 2 busy cores; the nano model gains nothing from more
# Every pair once per epoch: 8 pairs, 4 per step (2 per process with 2 processes), every step logged.
QUICK = {"batch_size": 4, "learning_rate": 1e-3, "warmup_ratio": 0.0, "logging_steps": 1}


@pytest.fixture(scope="module")
def grpo_prompts(tokenizer):
    """Four prompts, each with the checker reward its query's ground truth and tools make."""
    queries = [q for q in generate_environment(EnvironmentConfig(seed=0, queries=60)).queries if q.ground_truth][:4]
    prompts = []
    for q in queries:
        tools = [t.as_openai() for t in q.tools]
        prompts.append(
            {"prompt": render_prompt(tokenizer, q.messages, tools), "reward": checker_reward(q.ground_truth, tools)}
        )
    return prompts


def spec_file(tmp_path, name="spec.json", **fields) -> str:
    return str(write_spec(JobSpec(**fields), tmp_path / name))


def weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def job_processes(pid: int) -> list[psutil.Process]:
    """The launcher and every process under it (torch's agent starts the workers in sessions of their own)."""
    try:
        launcher = psutil.Process(pid)
        return [launcher, *launcher.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


# --- the spec ----------------------------------------------------------------------------------------------------


def test_a_spec_round_trips_through_its_file(tmp_path, rows):
    spec = JobSpec(
        algorithm="simpo",
        policy_path="/models/p",
        output_dir="/out",
        config={"beta": 2.0},
        rows=rows,
        checkpoint_dir="/state",
        resume=True,
    )
    assert read_spec(write_spec(spec, tmp_path / "spec.json")) == spec
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"algorithm": "ppo"}, "algorithm: expected one of sft, dpo, ipo, simpo, orpo, grpo, got 'ppo'"),
        ({"policy_path": ""}, "policy_path: expected a non-empty path"),
        ({"config": {"beta": -1.0}}, "config: invalid simpo settings: beta must be > 0"),
        ({"config": {"betta": 1.0}}, "config: unknown simpo setting(s): betta"),
        ({"rows": []}, "rows: expected a non-empty list"),
        ({"rows": [{"prompt": "p", "chosen": "a"}]}, "rows: row 0: missing or non-text rejected"),
        ({"resume": True}, "resume: true needs the checkpoint_dir"),
        ({"prompts": [{"prompt": "p"}]}, "prompts: not used by simpo (it trains on rows)"),
        (
            {"algorithm": "grpo", "rows": None, "prompts": [{"prompt": "p", "reward": {"kind": "judge"}}]},
            "prompts: entry 0: reward: expected an object with kind one of checker, solve_f1",
        ),
        (
            {
                "algorithm": "grpo",
                "rows": None,
                "prompts": [{"prompt": "p", "reward": {"kind": "solve_f1", "sub_answers": {}}}],
            },
            "reward: implementations: expected {tool name: Python source}",
        ),
        ({"algorithm": "sft", "rows": None, "examples": {"easy": []}}, "examples: expected {bucket: [examples]}"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(changes, message, rows):
    fields = {"algorithm": "simpo", "policy_path": "/models/p", "output_dir": "/out", "rows": rows, **changes}
    with pytest.raises(SpecError) as error:
        JobSpec(**fields)
    assert message in str(error.value)


def test_a_spec_file_with_unknown_or_missing_fields_is_refused(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"algorithm": "dpo", "policy_path": "/p", "rowz": []}))
    with pytest.raises(SpecError, match="unknown field.*rowz"):
        read_spec(path)
    path.write_text('{"algorithm": "dpo",')
    with pytest.raises(SpecError, match="is not JSON"):
        read_spec(path)


# --- bad input: refused before anything starts ---------------------------------------------------------------------


def test_the_launch_command(tmp_path):
    plain = launch_command("s.json", num_processes=2, port=29999)
    assert plain[1:3] == ["-m", "accelerate.commands.launch"] and plain[-3:] == ["-m", "workers.train.job", "s.json"]
    assert {"--multi_gpu", "--num_processes", "2", "--main_process_port", "29999"} <= set(plain)
    configured = launch_command("s.json", accelerate_config="fsdp.yaml")
    assert "--config_file" in configured and "--num_processes" not in configured  # the file decides
    assert "--num_processes" in launch_command("s.json", num_processes=4, accelerate_config="fsdp.yaml")


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing config", "does not exist"),
        ("unparseable config", "does not parse"),
        ("gpu config on cpu", "needs GPUs"),
        ("too many processes", "64 processes but only"),
        ("no processes", "num_processes must be an integer >= 1"),
        ("bad spec", "bad job spec"),
        ("no accelerate", "the launcher is missing: accelerate is not installed"),
    ],
)
def test_input_that_cannot_start_a_job_is_refused_with_the_reason(case, message, tmp_path, rows):
    spec = spec_file(tmp_path, algorithm="simpo", policy_path="/models/p", output_dir=str(tmp_path / "out"), rows=rows)
    kwargs = {}
    if case == "missing config":
        kwargs["accelerate_config"] = tmp_path / "nowhere.yaml"
    elif case == "unparseable config":
        (tmp_path / "bad.yaml").write_text("compute_environment: LOCAL_MACHINE\nnum_processes: [2\n")
        kwargs["accelerate_config"] = tmp_path / "bad.yaml"
    elif case == "gpu config on cpu":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        (tmp_path / "ddp.yaml").write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
        kwargs["accelerate_config"] = tmp_path / "ddp.yaml"
    elif case == "too many processes":
        kwargs["num_processes"] = 64
    elif case == "no processes":
        kwargs["num_processes"] = 0
    elif case == "bad spec":
        (tmp_path / "spec.json").write_text('{"algorithm": "dpo"}')
    elif case == "no accelerate":  # the same interpreter without its site-packages
        python = tmp_path / "python"
        python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
        python.chmod(0o755)
        kwargs["python"] = str(python)
    started = []
    with pytest.raises(LaunchError, match=message):
        run_job(spec, on_start=started.append, **kwargs)
    assert not started


CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_the_shipped_accelerate_configs_load_as_accelerate_reads_them(path, tmp_path, rows):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.distributed_type.value in ("MULTI_GPU", "FSDP", "DEEPSPEED") and config.mixed_precision == "bf16"
    assert config.num_processes % config.num_machines == 0
    if not torch.cuda.is_available():  # read and checked by the launcher up to the GPUs it asks for
        spec = spec_file(tmp_path, algorithm="simpo", policy_path="/p", output_dir="/out", rows=rows)
        with pytest.raises(LaunchError, match="needs GPUs"):
            run_job(spec, accelerate_config=path)


# --- launched jobs (each starts accelerate, torch and TRL in 1-3 processes: tens of seconds on a busy CPU) ------------


@pytest.mark.slow
def test_a_preference_job_on_two_processes_trains_every_pair_once(tiny_model_dir, rows, tmp_path):
    fields = {"algorithm": "simpo", "policy_path": str(tiny_model_dir), "rows": rows, "config": QUICK}
    updates = []
    job = run_job(
        spec_file(tmp_path, output_dir=str(tmp_path / "out"), **fields), updates.append, num_processes=2, env=ONE_THREAD
    )

    result = job["result"]
    assert job["world_size"] == result["world_size"] == 2 and job["launcher"] == "accelerate"
    # 8 pairs, 4 a step shared by 2 processes: 2 steps, each pair batched exactly once
    assert result["steps"] == 2 and result["examples_seen"] == result["distinct_examples_seen"] == len(rows)
    assert [u["step"] for u in updates] == [1, 2]  # from rank 0 only: one line a step
    assert all(u.keys() == {"step", "max_steps", "loss", "epoch", "tokens_per_second"} for u in updates)
    assert updates[-1]["tokens_per_second"] > 0
    assert json.loads((tmp_path / "out" / RESULT_FILE).read_text())["world_size"] == 2
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2).shape == (1, 5)
    # The same steps as one process trains with the whole batch (DDP averages the two halves' gradients).
    alone = run_spec(JobSpec(output_dir=str(tmp_path / "alone"), **fields))
    assert result["losses"] == pytest.approx(alone["losses"], rel=1e-4)


@pytest.mark.slow
def test_a_grpo_job_on_two_processes_scores_every_prompt(tiny_model_dir, grpo_prompts, tmp_path):
    config = {
        "num_generations": 4,
        "max_completion_length": 8,
        "batch_size": 2,
        "logging_steps": 1,
        "learning_rate": 1e-3,
    }
    spec = spec_file(
        tmp_path,
        algorithm="grpo",
        policy_path=str(tiny_model_dir),
        output_dir=str(tmp_path / "out"),
        config=config,
        prompts=grpo_prompts,
    )
    updates = []
    job = run_job(spec, updates.append, num_processes=2, env=ONE_THREAD)

    result = job["result"]
    assert job["world_size"] == result["world_size"] == 2
    # 4 prompts, 2 a step: 2 steps; every prompt sampled 4 times over the two processes, none lost or doubled
    assert result["steps"] == 2 and result["prompts_seen"] == 4 and result["completions"] == 4 * 4
    assert -1.0 <= result["mean_reward"] <= 1.0  # the checker's graded reward, rebuilt in the job
    assert [u["step"] for u in updates] == [1, 2] and all("reward" in u for u in updates)
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")


@pytest.mark.slow
def test_the_warm_up_on_two_processes_keeps_its_curriculum(tiny_model_dir, tiny_queries, tokenizer, tmp_path):
    answered = [q for q in tiny_queries if q["reference_output"]][:16]
    examples = {
        bucket: [
            {"prompt": render_prompt(tokenizer, q["messages"], q["tools"]), "completion": q["reference_output"]}
            for q in part
        ]
        for bucket, part in (("easy", answered[:8]), ("medium", answered[8:]))
    }
    fields = {
        "algorithm": "sft",
        "policy_path": str(tiny_model_dir),
        "examples": examples,
        "config": {"batch_size": 4, "max_steps": 4, "logging_steps": 1, "learning_rate": 1e-3},
    }
    updates = []
    job = run_job(
        spec_file(tmp_path, output_dir=str(tmp_path / "out"), **fields), updates.append, num_processes=2, env=ONE_THREAD
    )
    alone_updates = []
    alone = run_spec(JobSpec(output_dir=str(tmp_path / "alone"), **fields), progress=alone_updates.append)

    assert job["world_size"] == 2
    assert [(b["bucket"], b["steps"]) for b in job["result"]["buckets"]] == [("easy", 1), ("medium", 3)]
    assert [(u["step"], u["bucket"]) for u in updates] == [(u["step"], u["bucket"]) for u in alone_updates]
    # the same examples in every step as in one process; the loss is each half's token mean, averaged
    assert job["result"]["final_loss"] == pytest.approx(alone["final_loss"], rel=0.05)
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")


@pytest.mark.slow
def test_one_process_through_the_launcher_matches_the_in_process_run(tiny_model_dir, rows, tmp_path):
    fields = {"algorithm": "dpo", "policy_path": str(tiny_model_dir), "rows": rows, "config": QUICK}
    launched = run_job(spec_file(tmp_path, output_dir=str(tmp_path / "launched"), **fields), env=ONE_THREAD)
    alone = run_spec(JobSpec(output_dir=str(tmp_path / "alone"), **fields))

    assert launched["world_size"] == 1 and launched["launcher"] == "accelerate"
    assert launched["result"]["losses"] == pytest.approx(alone["losses"], rel=1e-5)
    a, b = weights(tmp_path / "launched"), weights(tmp_path / "alone")
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)
    assert any(not torch.equal(a[name], weights(tiny_model_dir)[name]) for name in a)  # it did train


class Cancelled(Exception):
    pass


@pytest.mark.slow
def test_cancel_terminates_every_process_of_the_job(tiny_model_dir, rows, tmp_path):
    spec = spec_file(
        tmp_path,
        algorithm="simpo",
        policy_path=str(tiny_model_dir),
        output_dir=str(tmp_path / "out"),
        config={**QUICK, "max_steps": 100_000},
        rows=rows,
    )
    pid, seen = [], {}

    def progress(update):
        seen.update({p.pid: p for p in job_processes(pid[0])})  # launcher, agent, both workers

    def check():
        if seen:
            raise Cancelled

    with pytest.raises(Cancelled):
        run_job(spec, progress, check, num_processes=2, env=ONE_THREAD, on_start=pid.append, check_interval=0.2)
    assert len(seen) >= 3
    assert running(list(seen.values())) == []
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_job_killed_with_sigkill_resumes_from_its_last_checkpoint(tiny_model_dir, rows, tmp_path):
    fields = {
        "algorithm": "simpo",
        "policy_path": str(tiny_model_dir),
        "output_dir": str(tmp_path / "out"),
        "rows": rows,
        "checkpoint_dir": str(tmp_path / "state"),
        "config": {**QUICK, "batch_size": 2, "max_steps": 30, "save_steps": 2},
    }
    pid = []

    def kill_everything_at_step_3(update):
        if update["step"] >= 3:
            for p in job_processes(pid[0]):  # the whole job at once, as when its machine kills it
                p.send_signal(signal.SIGKILL)

    with pytest.raises(JobFailed) as failure:
        run_job(
            spec_file(tmp_path, **fields),
            kill_everything_at_step_3,
            num_processes=2,
            env=ONE_THREAD,
            on_start=pid.append,
        )
    assert failure.value.exit_code == -signal.SIGKILL and "killed by SIGKILL" in str(failure.value)
    saved = last_checkpoint(tmp_path / "state")
    assert saved is not None
    step_at_kill = int(saved.rsplit("-", 1)[1])
    assert 2 <= step_at_kill < 30

    updates = []
    job = run_job(
        spec_file(tmp_path, "resume.json", **{**fields, "resume": True}),
        updates.append,
        num_processes=2,
        env=ONE_THREAD,
    )
    assert job["world_size"] == 2
    assert job["result"]["resumed_from_step"] == step_at_kill and job["result"]["steps"] == 30
    assert updates[0]["step"] == step_at_kill + 1
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")


@pytest.mark.slow
def test_a_failing_job_raises_its_exit_code_and_stderr_tail(rows, tmp_path):
    broken = tmp_path / "broken-policy"
    broken.mkdir()
    (broken / "config.json").write_text("{this is not json")
    spec = spec_file(
        tmp_path, algorithm="dpo", policy_path=str(broken), output_dir=str(tmp_path / "out"), rows=rows, config=QUICK
    )
    with pytest.raises(JobFailed) as failure:
        run_job(spec, num_processes=2, env=ONE_THREAD, log_path=tmp_path / "job.log")
    error = failure.value
    assert error.exit_code > 0 and error.stderr_tail
    headline = str(error).splitlines()[0]
    assert headline.startswith(f"training job exited with code {error.exit_code}: ") and "config.json" in headline
    assert error.stderr_tail.splitlines()[-1] in (tmp_path / "job.log").read_text()
