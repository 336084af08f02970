"""Sandbox throughput: calls per second through `run_calls`, as the Solve-F1 reward runs them during search.

Three workloads: one trivial call per sandbox (the floor: process start-up), the generated environment's
reference turns (1–4 calls each, tools that import datetime and zlib), and batches of 8 trivial calls (the
per-call cost once the sandbox is up). `python -m benchmarks.sandbox` runs it without Django.
"""

from __future__ import annotations

import os
import time

from rewards.sandbox import SandboxLimits, run_calls, sandbox_barriers

SECONDS = 10.0  # per workload; the figure is calls / wall seconds over whole batches
TRIVIAL = {"echo": "def echo(text):\n    return {'text': text}"}


def environment_turns() -> tuple[dict[str, str], list[list[dict]]]:
    """The generated environment's tool code and its reference turns (as the generated-tools test runs them)."""
    from apps.catalog.environment import EnvironmentConfig, generate_environment
    from rewards.parsing import parse_output

    env = generate_environment(EnvironmentConfig(seed=3, queries=60))
    turns = [
        [call.as_json() for call in parse_output(query.reference_output).calls]
        for query in env.queries
        if query.sub_answers
    ]
    return {tool.name: tool.implementation for tool in env.tools}, [turn for turn in turns if turn]


def _cpu_seconds() -> float:
    """CPU of this process and its reaped descendants (the sandboxes), user + system."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def throughput(implementations: dict[str, str], turns: list[list[dict]], limits: SandboxLimits) -> tuple[float, float]:
    """(calls per wall second, CPU milliseconds per call); on a shared machine the second is the steadier one."""
    calls, started, cpu_started, index = 0, time.perf_counter(), _cpu_seconds(), 0
    while time.perf_counter() - started < SECONDS:
        turn = turns[index % len(turns)]
        outcomes = run_calls(implementations, turn, limits)
        assert all(outcome.ok for outcome in outcomes), [outcome.error for outcome in outcomes]
        calls += len(turn)
        index += 1
    return calls / (time.perf_counter() - started), 1000 * (_cpu_seconds() - cpu_started) / calls


def main() -> None:
    limits = SandboxLimits()
    print(f"barriers: {', '.join(sandbox_barriers(limits))}")
    one = [[{"name": "echo", "arguments": {"text": "hi"}}]]
    eight = [[{"name": "echo", "arguments": {"text": str(i)}} for i in range(8)]]
    implementations, turns = environment_turns()
    for name, tools, work in (
        ("1 trivial call per sandbox", TRIVIAL, one),
        ("generated environment turns", implementations, turns),
        ("8 trivial calls per sandbox", TRIVIAL, eight),
    ):
        rate, cpu = throughput(tools, work, limits)
        print(f"{name}: {rate:.1f} calls/s, {cpu:.1f} ms CPU per call")


if __name__ == "__main__":
    main()
