"""`make gpu-check` (`python -m workers.gpu_check`): on a CUDA machine, run every GPU path of the engine once,
small and fast — build the tiny model, generate with the transformers backend on CUDA, search trees with it,
train one preference round (SimPO) and one GRPO round in bf16, and serve the model with vLLM when it is
installed — printing tokens/s and nodes/s, and exiting non-zero if any part fails. It needs no network and no
database (nothing here touches Django).

On a machine without CUDA it says so and exits 0 (so CI can run it); `--device cpu` runs the same checks on
the CPU instead, a smoke test of the script itself whose figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

TIME_LIMIT = 600  # seconds: the whole check is meant to take well under ten minutes


def _environment(queries: int):
    from apps.catalog.environment import EnvironmentConfig, generate_environment

    env = generate_environment(EnvironmentConfig(seed=0, queries=queries))
    return [q for q in env.queries if q.ground_truth and q.reference_output.startswith("[")], env.queries


def _wrong(answer: str) -> str:
    """The answer with its first argument value's first character changed: a rejected side."""
    i = answer.find("=") + 1
    while 0 < i < len(answer) and answer[i] in " '\"":
        i += 1
    if not 0 < i < len(answer):
        return answer + " "
    return answer[:i] + ("0" if answer[i] != "0" else "1") + answer[i + 1 :]


class Check:
    """Runs named parts, timing each and keeping going after a failure; `failed` lists what broke."""

    def __init__(self, deadline: float):
        self.deadline, self.failed = deadline, []

    def part(self, name: str, fn) -> object:
        if time.monotonic() > self.deadline:
            self.failed.append(name)
            print(f"FAIL {name}: skipped, the {TIME_LIMIT} s time limit was reached", flush=True)
            return None
        start = time.monotonic()
        try:
            result = fn()
        except Exception as exc:  # every part reports, the exit code says whether all passed
            self.failed.append(name)
            print(f"FAIL {name} ({time.monotonic() - start:.1f} s): {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(limit=3)
            return None
        print(
            f"ok   {name} ({time.monotonic() - start:.1f} s){': ' + result if isinstance(result, str) else ''}",
            flush=True,
        )
        return result


def run(
    device: str, workdir: Path, queries: int = 120, trees: int = 16, steps: int = 4, vllm: str = "auto"
) -> list[str]:
    """Run the checks on `device` ("cuda" or "cpu"); returns the names of the parts that failed."""
    import torch

    from workers.llm.base import SamplingParams
    from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records, render_prompt
    from workers.llm.transformers_backend import TransformersBackend
    from workers.mcts import MCTSConfig, Tree, leaf_scorer, run_search
    from workers.train.grpo import GRPOParams, train_grpo
    from workers.train.preference import config_for, train_preference

    check = Check(time.monotonic() + TIME_LIMIT)
    picked, every = _environment(queries)
    model = workdir / "tiny"
    check.part(
        "build the tiny model",
        lambda: str(
            build_tiny_model(
                corpus_from_records(
                    {
                        "messages": q.messages,
                        "reference_output": q.reference_output,
                        "tools": [t.as_openai() for t in q.tools],
                    }
                    for q in every
                ),
                model,
                TinyModelConfig(size="small", seed=0),
            )
        ),
    )
    if not (model / "config.json").exists():
        return check.failed
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = [render_prompt(tokenizer, q.messages, [t.as_openai() for t in q.tools]) for q in picked]
    dtype = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"

    def generation(backend) -> str:
        params = SamplingParams(n=4, max_tokens=48, temperature=1.0, seed=0)
        start = time.perf_counter()
        outputs = backend.generate(prompts[:64], params)
        seconds = time.perf_counter() - start
        tokens = sum(len(s.token_logprobs) for samples in outputs for s in samples)
        if not tokens:
            raise RuntimeError("no token generated")
        return f"{tokens / seconds:,.0f} tokens/s ({tokens} tokens, {len(outputs)} prompts × 4)"

    def search(backend) -> str:
        config = MCTSConfig(max_tokens=48)
        chosen = picked[:trees]
        made = [Tree.new(f"t{i}", prompts[i]) for i in range(len(chosen))]
        scorers = [leaf_scorer(config, q.ground_truth, [t.as_openai() for t in q.tools]) for q in chosen]
        start = time.perf_counter()
        run_search(made, backend, scorers, config)
        nodes = sum(len(t) - 1 for t in made)
        return f"{nodes / (time.perf_counter() - start):,.1f} nodes/s ({nodes} nodes, {len(made)} trees)"

    backend = check.part("transformers backend", lambda: TransformersBackend(str(model), device=device, dtype=dtype))
    if backend is not None:
        check.part(f"generation (transformers, {device}, {dtype})", lambda: generation(backend))
        check.part(f"search (transformers, {device})", lambda: search(backend))
        backend.close()

    rows = [
        {"prompt": p, "chosen": q.reference_output, "rejected": _wrong(q.reference_output)}
        for p, q in zip(prompts, picked)
    ][:64]

    def preference() -> str:
        result = train_preference(
            model,
            workdir / "simpo",
            rows,
            config_for("simpo", {"max_steps": steps, "batch_size": 4, "learning_rate": 1e-4}),
        )
        return (
            f"{result.steps} steps, loss {result.first_loss:.3f} → {result.last_loss:.3f}, "
            f"{result.tokens_per_second:,.0f} tokens/s"
        )

    def grpo() -> str:
        from rewards.checker import Checker

        checkers = [Checker(q.ground_truth, [t.as_openai() for t in q.tools], rule="strict") for q in picked[:16]]
        result = train_grpo(
            model,
            workdir / "grpo",
            prompts[:16],
            [lambda text, c=c: float(c(text).reward) for c in checkers],
            GRPOParams(max_steps=steps, num_generations=4, batch_size=2, max_completion_length=48),
        )
        return f"{result.steps} steps, mean reward {result.mean_reward:.3f}, {result.tokens_per_second:,.0f} tokens/s"

    check.part(f"preference round (SimPO, {device})", preference)
    check.part(f"GRPO round ({device})", grpo)

    if vllm != "skip":
        try:
            import vllm as _  # noqa: F401
        except ImportError:
            if vllm == "require":
                check.failed.append("vllm backend")
                print("FAIL vllm backend: vLLM is not installed (pip install -r requirements-gpu.txt)", flush=True)
            else:
                print("skip vllm backend: vLLM is not installed (pip install -r requirements-gpu.txt)", flush=True)
        else:
            from workers.llm.vllm_backend import VLLMBackend

            engine = check.part("vllm backend", lambda: VLLMBackend(str(model)))
            if engine is not None:
                check.part("generation (vllm)", lambda: generation(engine))
                check.part("search (vllm)", lambda: search(engine))
                engine.close()
    return check.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda (default; without CUDA the check says so and exits 0) or cpu (a smoke test of the script itself)",
    )
    parser.add_argument(
        "--vllm",
        choices=("auto", "require", "skip"),
        default="auto",
        help="auto: check the vllm backend when vLLM is installed; require: fail without it",
    )
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps of each training check (default 4)")
    parser.add_argument("--trees", type=int, default=16, help="trees of each search check (default 16)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.trees < 1:
        parser.error("--steps and --trees must be at least 1")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        print(
            f"gpu-check needs a CUDA device, and torch {torch.__version__} ({build}) sees none here: nothing "
            "checked. On a GPU worker: pip install -r requirements.txt -r requirements-gpu.txt, then make "
            "gpu-check. (--device cpu runs the same checks on the CPU, as a smoke test of this script.)"
        )
        return 0
    if args.device == "cuda":
        print(
            f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True
        )
    with tempfile.TemporaryDirectory(prefix="itool-gpu-check-") as folder:
        start = time.monotonic()
        failed = run(args.device, Path(folder), trees=args.trees, steps=args.steps, vllm=args.vllm)
    verdict = f"FAILED: {', '.join(failed)}" if failed else "all checks passed"
    print(f"gpu-check on {args.device}: {verdict} in {time.monotonic() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
