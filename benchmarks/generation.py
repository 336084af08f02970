"""Generation throughput of the transformers backend on an MCTS-shaped batch, with and without KV prefix reuse.

The batch is what one search step asks for: several trees, each expanding a few nodes, every node's prompt
being the rendered query plus the fragments above it, `width` samples per node. Without reuse every sample
row prefills its whole prompt; with reuse each group of prompts sharing a prefix runs it once, each distinct
prompt runs its suffix once, and the n samples share the result.
"""

from __future__ import annotations

import tempfile
import time

from apps.catalog.environment import EnvironmentConfig, generate_environment
from workers.llm.base import SamplingParams
from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records, render_prompt
from workers.llm.transformers_backend import TransformersBackend

TREES = 8  # queries searched at once
NODES_PER_TREE = 3  # the root and two deeper nodes of each tree expanded in the same step
WIDTH = 4  # samples per node
MAX_TOKENS = 32
REPEATS = 3  # best of, against noise from other processes


def _queries() -> list[dict]:
    env = generate_environment(EnvironmentConfig(seed=0, queries=200))
    return [
        {"messages": q.messages, "reference_output": q.reference_output, "tools": [t.as_openai() for t in q.tools]}
        for q in env.queries
    ]


def _node_prompts(backend: TransformersBackend, queries: list[dict]) -> list[str]:
    """Each tree's root prompt, and the prompt plus a growing piece of the reference answer (deeper nodes)."""
    prompts = []
    for query in [q for q in queries if q["reference_output"]][:TREES]:
        prompt = render_prompt(backend.tokenizer, query["messages"], query["tools"])
        answer = query["reference_output"]
        cuts = [0] + [len(answer) * (k + 1) // (NODES_PER_TREE + 1) for k in range(NODES_PER_TREE - 1)]
        prompts += [prompt + answer[:cut] for cut in cuts]
    return prompts


def _measure(backend: TransformersBackend, prompts: list[str], params: SamplingParams) -> tuple[float, dict, list]:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        results = backend.generate(prompts, params)
        best = min(best, time.perf_counter() - start)
    return best, dict(backend.last_stats), results


def main() -> None:
    queries = _queries()
    with tempfile.TemporaryDirectory() as folder:
        build_tiny_model(corpus_from_records(queries), folder, TinyModelConfig(size="small", seed=0))
        backend = TransformersBackend(folder, batch_size=128, num_threads=1)
        prompts = _node_prompts(backend, queries)
        params = SamplingParams(n=WIDTH, max_tokens=MAX_TOKENS, temperature=1.0, seed=0)
        backend.generate(prompts[:2], params)  # warm-up
        prompt_tokens = sum(len(backend.encode(p)) for p in prompts) / len(prompts)
        print(
            f"small tiny model ({backend.model.num_parameters():,} parameters), 1 thread; "
            f"{len(prompts)} node prompts ({TREES} trees x {NODES_PER_TREE} nodes, ~{prompt_tokens:.0f} tokens), "
            f"{WIDTH} samples each, {MAX_TOKENS} new tokens"
        )
        runs = {}
        for label, reuse, min_shared in (
            ("no reuse (every row prefills its prompt)", False, 16),
            ("reuse, identical prompts only", True, 10**9),
            ("reuse, shared prefixes grouped", True, 16),
        ):
            backend.prefix_reuse, backend.min_shared_prefix = reuse, min_shared
            seconds, stats, results = _measure(backend, prompts, params)
            runs[label] = (seconds, stats, results)
            print(
                f"  {label:<42} {stats['generated_tokens'] / seconds:8.0f} generated tokens/s "
                f"({seconds:.3f} s; {stats['prefill_tokens']:,} prompt tokens run)"
            )
        baseline_seconds, _, baseline = runs["no reuse (every row prefills its prompt)"]
        for label, (seconds, _, results) in list(runs.items())[1:]:
            same = [[s.text for s in r] for r in results] == [[s.text for s in r] for r in baseline]
            print(
                f"  {label}: {baseline_seconds / seconds:.2f}x the tokens/s of no reuse "
                f"({'same' if same else 'DIFFERENT'} samples)"
            )
