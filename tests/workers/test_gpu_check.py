"""`make gpu-check`: without CUDA it says so and exits 0; on the CPU (`--device cpu`) every part runs and a
failing part makes the exit code non-zero while the others still report."""

import pytest
import torch

from workers import gpu_check


def test_without_cuda_it_says_what_it_needs_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the edge: no GPU is lent to this project
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert "needs a CUDA device" in out and "requirements-gpu.txt" in out and "nothing checked" in out


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main(["--steps", "0"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "tpu"])


def test_on_the_cpu_every_part_runs_and_one_failure_fails_the_check(monkeypatch, capsys):
    import workers.train.grpo

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(workers.train.grpo, "train_grpo", broken)
    assert gpu_check.main(["--device", "cpu", "--steps", "2", "--trees", "4", "--vllm", "skip"]) == 1
    out = capsys.readouterr().out
    for part in (
        "build the tiny model",
        "transformers backend",
        "generation (transformers, cpu, float32)",
        "search (transformers, cpu)",
        "preference round (SimPO, cpu)",
    ):
        assert f"ok   {part}" in out, out
    assert "tokens/s" in out and "nodes/s" in out
    assert "FAIL GRPO round (cpu)" in out and "out of memory" in out
    assert "gpu-check on cpu: FAILED: GRPO round (cpu)" in out
