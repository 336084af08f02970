"""Evaluation: a policy's answers to held-out queries, scored by the checker — pass rate per kind and
the deficiency histogram (greedy decoding, so one number per checkpoint)."""
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
             progress: Callable[[int], None] | None = None) -> dict:
    """{"n", "pass_rate", "by_kind": {kind: {"n", "pass_rate"}}, "deficiencies": {name: count},
    "mean_reward"} for the policy behind `backend`."""
    params = SamplingParams(n=1, max_tokens=config.max_tokens, temperature=config.temperature, stop=config.stop,
                            seed=0)
    passed_by_kind: Counter = Counter()
    n_by_kind: Counter = Counter()
    deficiencies: Counter = Counter()
    reward_sum = 0.0
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
        if progress:
            progress(len(idx))
    n = sum(n_by_kind.values())
    return {
        "n": n,
        "pass_rate": sum(passed_by_kind.values()) / n if n else 0.0,
        "mean_reward": reward_sum / n if n else 0.0,
        "by_kind": {k: {"n": n_by_kind[k], "pass_rate": passed_by_kind[k] / n_by_kind[k]} for k in sorted(n_by_kind)},
        "deficiencies": dict(deficiencies.most_common()),
    }
