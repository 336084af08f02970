"""Training throughput: `train_preference` (SimPO, DPO) against a bare TRL run of the same trainer, data and args.

The engine wraps TRL (loading, a loss-log callback, a token-counting collator, checkpoint plumbing, saving); the
goal is that this costs at most 10% of the tokens/s. Both runs use `trl_args(params)`, the same rows and seed, so
they train on the same batches and process the same tokens (the engine counts them). Runs alternate, best of
REPEATS. Three figures per algorithm:
- step: the median CPU time of the training thread between two optimisation steps (both runs log every step,
  the engine through its progress callback, the bare run through a TrainerCallback); with one torch thread all
  the work is on that thread, and CPU time is the figure other processes on a shared machine disturb least;
- loop: the wall time of `trainer.train()`, what `PreferenceResult.seconds` reports;
- call: the CPU time of the whole call, loading, tokenising and training (and saving, for the engine only).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import warnings

from apps.catalog.environment import EnvironmentConfig, generate_environment
from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records, render_prompt
from workers.train.preference import config_for, train_preference, trl_args

SIZE = "small"  # DESIGN.md's demo model (~1.2M parameters)
PAIRS = 64
STEPS = 16
BATCH = 8  # pairs per step: STEPS x BATCH = 2 passes over the pairs
REPEATS = 3
THREADS = 1  # as the generation benchmark: stable figures on a shared 2-core machine


def _queries() -> list[dict]:
    env = generate_environment(EnvironmentConfig(seed=0, queries=200))
    return [
        {"messages": q.messages, "reference_output": q.reference_output, "tools": [t.as_openai() for t in q.tools]}
        for q in env.queries
    ]


def _rows(tokenizer, queries: list[dict]) -> list[dict]:
    """The reference answer against the same answer calling a function that does not exist."""
    answered = [q for q in queries if q["reference_output"].startswith("[")][:PAIRS]
    return [
        {
            "prompt": render_prompt(tokenizer, q["messages"], q["tools"]),
            "chosen": q["reference_output"],
            "rejected": q["reference_output"].replace("(", "_v2(", 1),
        }
        for q in answered
    ]


def _median_step(stamps: list[float]) -> float:
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def _bare_trl(model_dir: str, rows: list[dict], params) -> dict:
    """TRL's trainer built directly, timed as the engine is."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback

    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                stamps.append(time.thread_time())

    cpu_start = time.process_time()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if params.algorithm == "dpo":
        from trl import DPOTrainer as Trainer
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*trl.experimental")
            from trl.experimental.cpo import CPOTrainer as Trainer
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            model=model,
            args=trl_args(params, scratch),
            train_dataset=datasets.Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[StepClock()],
        )
        trainer.remove_callback(PrinterCallback)  # as the engine does; printing a log line per step is not training
        loop_start = time.perf_counter()
        trainer.train()
        loop = time.perf_counter() - loop_start
    return {"step": _median_step(stamps), "loop": loop, "call": time.process_time() - cpu_start}


def _engine(model_dir: str, output_dir: str, rows: list[dict], params) -> tuple[dict, int]:
    stamps: list[float] = []
    cpu_start = time.process_time()
    result = train_preference(model_dir, output_dir, rows, params, progress=lambda _: stamps.append(time.thread_time()))
    times = {"step": _median_step(stamps), "loop": result.seconds, "call": time.process_time() - cpu_start}
    return times, result.tokens


def main() -> None:
    import datasets
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(THREADS)
    datasets.disable_progress_bars()  # for the bare runs too (the engine turns them off itself)
    hf_logging.disable_progress_bar()
    queries = _queries()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = f"{folder}/model"
        build_tiny_model(corpus_from_records(queries), model_dir, TinyModelConfig(size=SIZE, seed=0))
        rows = _rows(AutoTokenizer.from_pretrained(model_dir), queries)
        print(
            f"{SIZE} tiny model, {THREADS} thread; {len(rows)} pairs, {STEPS} steps of {BATCH}, best of {REPEATS}; "
            f"tokens/s (engine | bare TRL), ratio engine/bare (goal >= 0.90)"
        )
        for algorithm in ("simpo", "dpo"):
            params = config_for(algorithm, {"max_steps": STEPS, "batch_size": BATCH, "logging_steps": 1})
            best = {"engine": {}, "bare": {}}
            tokens = 0
            for repeat in range(REPEATS):
                for runner in ("engine", "bare") if repeat % 2 else ("bare", "engine"):  # alternate who goes first
                    if runner == "bare":
                        times = _bare_trl(model_dir, rows, params)
                    else:
                        times, tokens = _engine(model_dir, f"{folder}/{algorithm}", rows, params)
                    best[runner] = {k: min(v, best[runner].get(k, math.inf)) for k, v in times.items()}
            figures = []
            for key, work in (("step", tokens / STEPS), ("loop", tokens), ("call", tokens)):
                engine, bare = work / best["engine"][key], work / best["bare"][key]
                figures.append(f"{key} {engine:5.0f} | {bare:5.0f} = {engine / bare:.3f}")
            print(f"  {algorithm:<6} " + ";  ".join(figures))
