"""MCTS speed: nodes/s of the batched search (one generate call per step for all trees, shared prefixes run
once) against the one-node-at-a-time generate loop MCTS-DPO uses, on the same trees and seeds."""

from __future__ import annotations

import tempfile
import time

from apps.catalog.environment import EnvironmentConfig, generate_environment
from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records, render_prompt
from workers.llm.transformers_backend import TransformersBackend
from workers.mcts import MCTSConfig, Tree, leaf_scorer, run_search, run_search_sequential

TREES = 24
CONFIG = MCTSConfig(simulations=4, width=3, max_tokens=48)


def _trees_and_scorers(tokenizer, queries):
    trees, scorers = [], []
    for i, q in enumerate(queries):
        tools = [t.as_openai() for t in q.tools]
        trees.append(Tree.new(f"t{i}", render_prompt(tokenizer, q.messages, tools)))
        scorers.append(leaf_scorer(CONFIG, q.ground_truth, tools))
    return trees, scorers


def main() -> None:
    env = generate_environment(EnvironmentConfig(seed=0, queries=200))
    queries = [q for q in env.queries if q.ground_truth][:TREES]
    corpus = corpus_from_records(
        [
            {"messages": q.messages, "reference_output": q.reference_output, "tools": [t.as_openai() for t in q.tools]}
            for q in env.queries
        ]
    )
    with tempfile.TemporaryDirectory() as folder:
        build_tiny_model(corpus, folder, TinyModelConfig(size="small", seed=0))
        results = {}
        for label, batched in (("one node at a time", False), ("batched across trees", True)):
            backend = TransformersBackend(folder, batch_size=128, num_threads=1, prefix_reuse=batched)
            trees, scorers = _trees_and_scorers(backend.tokenizer, queries)
            start = time.perf_counter()
            (run_search if batched else run_search_sequential)(trees, backend, scorers, CONFIG)
            seconds = time.perf_counter() - start
            nodes = sum(len(t) for t in trees)
            results[label] = (nodes, seconds)
            print(f"  {label:<22} {nodes:6d} nodes in {seconds:6.2f} s = {nodes / seconds:8.1f} nodes/s")
    (n0, s0), (n1, s1) = results.values()
    print(
        f"small tiny model, 1 thread; {TREES} trees, {CONFIG.simulations} simulations x {CONFIG.width} samples, "
        f"{CONFIG.max_tokens} tokens"
    )
    print(f"batched search: {(n1 / s1) / (n0 / s0):.1f}x the nodes/s of the one-node-at-a-time loop")
