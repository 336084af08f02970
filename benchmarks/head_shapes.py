"""CPU speed of the tiny model's attention shapes: the presets' heads (head size 64, which vLLM serves) against
narrower heads of the same width (4 × 32 for "small", 4 × 12 for the old "nano").

For each shape, built from the same corpus and seed: generated tokens/s of the transformers backend on the
`generation` benchmark's MCTS-shaped batch (shared prefixes reused, as the search runs it), and training steps/s
of a warm-up-shaped SFT step (forward, backward and AdamW on 32 rendered queries with their answers). Shapes are
measured in turn inside each repeat and the best of the repeats is kept, so load from other processes hits
them alike; the ratios are against the first shape of each size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks.generation import MAX_TOKENS, WIDTH, _node_prompts, _queries
from workers.llm.base import SamplingParams
from workers.llm.tiny import IM_END, TinyModelConfig, build_tiny_model, corpus_from_records, render_conversation
from workers.llm.transformers_backend import TransformersBackend

# (label, preset, overrides): the preset as it is first, then the narrower heads it replaced.
SHAPES = (
    ("small: 2 heads x 64 (preset)", "small", {}),
    ("small: 4 heads x 32", "small", {"num_attention_heads": 4, "num_key_value_heads": 4}),
    ("nano: 1 head x 64, width 64 (preset)", "nano", {}),
    (
        "nano: 4 heads x 12, width 48, 2 KV heads",
        "nano",
        {"hidden_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2},
    ),
)
TRAIN_BATCH = 32  # the warm-up's batch (workers/train/sft.py)
TRAIN_STEPS = 5
REPEATS = 3  # best of, against noise from other processes


def _train_batch(tokenizer, queries: list[dict]) -> dict:
    texts = [
        render_conversation(q["messages"], q["tools"], add_generation_prompt=True) + q["reference_output"] + IM_END
        for q in queries[:TRAIN_BATCH]
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return batch


def _train_seconds(folder: Path, batch: dict) -> float:
    """Seconds per SFT step of a fresh copy of the model, over TRAIN_STEPS steps after one warm-up step."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(TRAIN_STEPS + 1):
        if step == 1:
            start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return (time.perf_counter() - start) / TRAIN_STEPS


def main() -> None:
    torch.set_num_threads(1)
    queries = [q for q in _queries() if q["reference_output"]]
    corpus = list(corpus_from_records(queries))
    with tempfile.TemporaryDirectory() as root:
        models = {}  # label → (folder, backend, SFT batch)
        for label, size, overrides in SHAPES:
            folder = Path(root) / str(len(models))
            build_tiny_model(corpus, folder, TinyModelConfig(size=size, seed=0, **overrides))
            backend = TransformersBackend(str(folder), batch_size=128, num_threads=1)
            models[label] = (folder, backend, _train_batch(backend.tokenizer, queries))
        _, first, batch = next(iter(models.values()))
        prompts = _node_prompts(first, queries)
        params = SamplingParams(n=WIDTH, max_tokens=MAX_TOKENS, temperature=1.0, seed=0)
        print(
            f"1 thread; generation: {len(prompts)} node prompts x {WIDTH} samples, {MAX_TOKENS} new tokens, prefix "
            f"reuse; training: SFT steps on {TRAIN_BATCH} queries (~{batch['input_ids'].shape[1]} tokens padded)"
        )
        tokens_per_s = dict.fromkeys(models, 0.0)
        steps_per_s = dict.fromkeys(models, 0.0)
        for _ in range(REPEATS):
            for label, (folder, backend, train_batch) in models.items():
                start = time.perf_counter()
                backend.generate(prompts, params)
                seconds = time.perf_counter() - start
                tokens_per_s[label] = max(tokens_per_s[label], backend.last_stats["generated_tokens"] / seconds)
                steps_per_s[label] = max(steps_per_s[label], 1 / _train_seconds(folder, train_batch))
        baseline = {}  # preset → the label its ratios are against
        for label, size, _ in SHAPES:
            reference = baseline.setdefault(size, label)
            tokens, steps = tokens_per_s[label], steps_per_s[label]
            print(
                f"  {label:<42} {models[label][1].model.num_parameters():>9,} parameters  "
                f"{tokens:7.0f} generated tokens/s ({tokens / tokens_per_s[reference]:.2f}x)  "
                f"{steps:5.2f} SFT steps/s ({steps / steps_per_s[reference]:.2f}x)"
            )
