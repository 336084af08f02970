"""Deficiency identification: score each train query under the current policy, keep the weak ones (iTool)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from workers.config import EngineConfig, Rule
from workers.llm.base import BaseBackend, SamplingParams
from workers.progress import Progress

METHODS = ("perplexity", "pass_rate")


@dataclass(frozen=True)
class SelectionConfig(EngineConfig):
    label: ClassVar[str] = "selection"

    method: str = "perplexity"  # iTool ranks by perplexity of the ground truth; or "pass_rate" over k samples
    ratio: float = 0.3  # perplexity: keep the hardest 30% (iTool's selection ratio)
    k: int = 4  # pass_rate: samples per query
    threshold: float = 0.5  # pass_rate: keep queries the policy gets right less often than this
    # pass_rate: ... and at least this often. 0 keeps the never-solved too; 1/k keeps only those solved
    # sometimes, whose trees hold right and wrong branches side by side (the pairs a round learns most from).
    min_rate: float = 0.0
    max_tokens: int = 64  # pass_rate: tokens per sample
    temperature: float = 1.0
    batch_size: int = 16
    seed: int = 0
    max_queries: int | None = None  # cap on how many are selected (the weakest first); None = no cap
    # Score only a seeded random sample of this many train queries (None = all): pass-rate selection samples k
    # answers per query, so a large train split (the demo's 16,000) would cost more than the search itself.
    candidates: int | None = None

    def rules(self) -> list[Rule]:
        return [
            ("method", self.method in METHODS, f"must be one of {', '.join(METHODS)}"),
            ("ratio", 0 < self.ratio <= 1, "must be in (0, 1]"),
            ("k", self.k >= 1, "must be at least 1"),
            ("threshold", 0 <= self.threshold <= 1, "must be in [0, 1]"),
            (
                "min_rate",
                0 <= self.min_rate < max(self.threshold, 1e-9),
                f"must be in [0, threshold) with threshold {self.threshold!r}",
            ),
            ("max_queries", self.max_queries is None or self.max_queries >= 1, "must be at least 1"),
            ("candidates", self.candidates is None or self.candidates >= 1, "must be at least 1"),
        ]


def candidate_indices(n: int, config: SelectionConfig) -> list[int]:
    """Which of `n` queries to score: all, or `config.candidates` of them drawn with `config.seed`, in order."""
    if config.candidates is None or config.candidates >= n:
        return list(range(n))
    import random

    return sorted(random.Random(config.seed).sample(range(n), config.candidates))


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def perplexities(
    backend: BaseBackend,
    prompts: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[float]:
    """exp(−mean token logprob) of each ground-truth answer after its prompt: higher = weaker. `progress` gets
    {"done", "total"} (prompts scored) after each batch."""
    scores: list[float] = []
    for idx in _batches(len(prompts), batch_size):
        logprobs = backend.score([prompts[i] for i in idx], [answers[i] for i in idx])
        scores += [math.exp(-sum(lp) / len(lp)) if lp else float("inf") for lp in logprobs]
        if progress:
            progress({"done": idx.stop, "total": len(prompts)})
    return scores


def pass_rates(
    backend: BaseBackend,
    prompts: Sequence[str],
    checkers: Sequence[Callable[[str], object]],
    config: SelectionConfig,
    progress: Progress | None = None,
) -> list[float]:
    """Share of k sampled answers the checker accepts: lower = weaker. `progress` gets {"done", "total"}
    (prompts scored) after each batch."""
    params = SamplingParams(n=config.k, max_tokens=config.max_tokens, temperature=config.temperature, seed=config.seed)
    rates: list[float] = []
    for idx in _batches(len(prompts), config.batch_size):
        samples = backend.generate([prompts[i] for i in idx], params)
        for i, per_prompt in zip(idx, samples):
            rates.append(sum(bool(checkers[i](s.text).valid) for s in per_prompt) / len(per_prompt))
        if progress:
            progress({"done": idx.stop, "total": len(prompts)})
    return rates


def choose(scores: Sequence[float], config: SelectionConfig) -> list[bool]:
    """Which queries to search: the top `ratio` by perplexity, or those with min_rate ≤ pass rate < threshold —
    at most `max_queries` of them, the weakest first."""
    # weakest first: highest perplexity, or lowest pass rate; ties by position
    sign = 1 if config.method == "pass_rate" else -1
    order = sorted(range(len(scores)), key=lambda i: (sign * scores[i], i))
    if config.method == "pass_rate":
        order = [i for i in order if config.min_rate <= scores[i] < config.threshold]
    else:
        order = order[: max(1, math.ceil(config.ratio * len(scores)))] if scores else []
    if config.max_queries is not None:
        order = order[: config.max_queries]
    chosen = set(order)
    return [i in chosen for i in range(len(scores))]
