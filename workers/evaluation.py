"""Evaluation: a policy's answers to held-out queries, scored by the checker — pass rate per kind and
the deficiency histogram (greedy decoding, so one number per checkpoint) — and, where the query's tools are
executable, by Solve-F1 (the answer's calls run in the sandbox; FTRL's metric)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workers.llm.base import BaseBackend, SamplingParams


@dataclass(frozen=True)
class EvalConfig:
    max_tokens: int = 96  # enough for the longest reference answer of the demo environment
    temperature: float = 0.0  # greedy: pass@1
    batch_size: int = 32
    stop: tuple[str, ...] = ()


def evaluate(backend: BaseBackend, prompts: Sequence[str], checkers: Sequence[Callable[[str], object]],
             kinds: Sequence[str], config: EvalConfig = EvalConfig(),
             progress: Callable[[int], None] | None = None,
             solvers: Sequence[Callable[[str], object] | None] | None = None,
             categories: Sequence[str | None] | None = None) -> dict:
    """{"n", "pass_rate", "by_kind": {kind: {"n", "pass_rate"[, "solve_f1"]}}, "deficiencies": {name: count},
    "mean_reward"} for the policy behind `backend`; with `solvers` (one per query, None where the tools cannot
    run; each returns an `apps.rewards.execution.SolveScore`) also "solve_f1" (the mean over the queries that
    have a solver, None when none has) and "solve_n"; with `categories` (one per query, None for none: BFCL's
    category of an imported BFCL query) also "by_category": {category: {"n", "pass_rate"}}."""
    params = SamplingParams(n=1, max_tokens=config.max_tokens, temperature=config.temperature, stop=config.stop,
                            seed=0)
    passed_by_kind: Counter = Counter()
    n_by_kind: Counter = Counter()
    deficiencies: Counter = Counter()
    reward_sum = 0.0
    f1_by_kind: Counter = Counter()
    n_by_category: Counter = Counter()
    passed_by_category: Counter = Counter()
    solved_n_by_kind: Counter = Counter()
    for start in range(0, len(prompts), config.batch_size):
        idx = range(start, min(len(prompts), start + config.batch_size))
        outputs = backend.generate([prompts[i] for i in idx], params)
        for i, samples in zip(idx, outputs):
            verdict = checkers[i](samples[0].text)
            n_by_kind[kinds[i]] += 1
            passed_by_kind[kinds[i]] += bool(verdict.valid)
            if not verdict.valid:
                deficiencies[verdict.deficiency] += 1
            reward_sum += verdict.reward
            category = categories[i] if categories is not None else None
            if category is not None:
                n_by_category[category] += 1
                passed_by_category[category] += bool(verdict.valid)
            solver = solvers[i] if solvers is not None else None
            if solver is not None:
                f1_by_kind[kinds[i]] += solver(samples[0].text).f1
                solved_n_by_kind[kinds[i]] += 1
        if progress:
            progress(len(idx))
    n = sum(n_by_kind.values())
    metrics = {
        "n": n,
        "pass_rate": sum(passed_by_kind.values()) / n if n else 0.0,
        "mean_reward": reward_sum / n if n else 0.0,
        "by_kind": {k: {"n": n_by_kind[k], "pass_rate": passed_by_kind[k] / n_by_kind[k]} for k in sorted(n_by_kind)},
        "deficiencies": dict(deficiencies.most_common()),
    }
    if n_by_category:
        metrics["by_category"] = {c: {"n": n_by_category[c], "pass_rate": passed_by_category[c] / n_by_category[c]}
                                  for c in sorted(n_by_category)}
    if solvers is not None:
        solve_n = sum(solved_n_by_kind.values())
        metrics["solve_n"] = solve_n
        metrics["solve_f1"] = sum(f1_by_kind.values()) / solve_n if solve_n else None
        for kind, figures in metrics["by_kind"].items():
            if solved_n_by_kind[kind]:
                figures["solve_f1"] = f1_by_kind[kind] / solved_n_by_kind[kind]
    return metrics
