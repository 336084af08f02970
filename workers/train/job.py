"""A training job as a file: the spec (what to train, on what, where to write) and the entry point that runs it.

`write_spec` / `read_spec` keep a JobSpec as JSON; `python -m workers.train.job SPEC.json` trains it — started by
`workers.train.launch.run_job` through `accelerate launch`, once per process. Every process trains; only rank 0
speaks on stdout, one JSON object a line:

    {"event": "progress", "step": 3, "max_steps": 10, "loss": 0.61, "epoch": 0.3, "tokens_per_second": 812.0}
    {"event": "result", "algorithm": "simpo", "world_size": 2, "launcher": "accelerate", "result": {...}}

Anything else a library prints goes to stderr, so stdout carries these lines only. The result is also written
next to the saved policy as `itool_job.json`. A GRPO spec carries what each prompt's reward needs (ground truth and
tools for the checker; tool implementations and sub-answers for Solve-F1), and the job builds the reward itself.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from workers.progress import Progress

PREFERENCE = ("dpo", "ipo", "simpo", "orpo")
ALGORITHMS = ("sft", *PREFERENCE, "grpo")
REWARD_KINDS = ("checker", "solve_f1")  # as workers.train.grpo.REWARDS
RESULT_FILE = "itool_job.json"  # written next to the saved policy
LAUNCHER_ENV = "ITOOL_TRAIN_LAUNCHER"  # set by launch.run_job: how the job was started


class SpecError(ValueError):
    """A job spec that cannot run; the message names the field at fault."""


@dataclass(frozen=True)
class JobSpec:
    """One training job. The data field depends on the algorithm: `rows` for dpo/ipo/simpo/orpo ({"prompt",
    "chosen", "rejected", ...} as train_preference takes them), `prompts` for grpo ({"prompt", "reward"}, the
    reward as `checker_reward` / `solve_f1_reward` make it), `examples` for sft ({bucket: [{"prompt",
    "completion"}]})."""

    algorithm: str
    policy_path: str  # the model to start from (a save_pretrained directory)
    output_dir: str  # where the trained policy is saved
    config: dict = field(default_factory=dict)  # the algorithm's settings that differ from its defaults
    rows: list | None = None
    prompts: list | None = None
    examples: dict | None = None
    checkpoint_dir: str | None = None  # trainer state (resumable checkpoints); None = none kept
    resume: bool = False  # continue from the last checkpoint in checkpoint_dir (from scratch when there is none)

    def __post_init__(self):
        problems = _problems(self)
        if problems:
            raise SpecError("; ".join(problems))

    @classmethod
    def from_dict(cls, data) -> JobSpec:
        if not isinstance(data, dict):
            raise SpecError(f"a job spec is a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        missing = [name for name in ("algorithm", "policy_path", "output_dir") if name not in data]
        if missing:
            raise SpecError(f"missing field(s) {', '.join(missing)}")
        return cls(**data)

    def params(self):
        """The algorithm's params dataclass with `config` applied (its own validation)."""
        if self.algorithm == "sft":
            from workers.train.sft import WarmupConfig

            return WarmupConfig.from_dict(self.config)
        if self.algorithm == "grpo":
            from workers.train.grpo import GRPOParams

            return GRPOParams.from_dict(self.config)
        from workers.train.preference import config_for

        return config_for(self.algorithm, self.config)


def _problems(spec: JobSpec) -> list[str]:
    """What is wrong with a spec, each naming its field (data checked as deeply as the trainers would)."""
    if spec.algorithm not in ALGORITHMS:
        return [f"algorithm: expected one of {', '.join(ALGORITHMS)}, got {spec.algorithm!r}"]
    problems = [
        f"{name}: expected a non-empty path, got {getattr(spec, name)!r}"
        for name in ("policy_path", "output_dir")
        if not isinstance(getattr(spec, name), str) or not getattr(spec, name)
    ]
    if spec.checkpoint_dir is not None and (not isinstance(spec.checkpoint_dir, str) or not spec.checkpoint_dir):
        problems.append(f"checkpoint_dir: expected a path or null, got {spec.checkpoint_dir!r}")
    if not isinstance(spec.resume, bool):
        problems.append(f"resume: expected true or false, got {spec.resume!r}")
    elif spec.resume and spec.checkpoint_dir is None:
        problems.append("resume: true needs the checkpoint_dir the interrupted run wrote to")
    if spec.algorithm == "sft" and spec.checkpoint_dir is not None:
        problems.append("checkpoint_dir: the sft warm-up keeps no trainer checkpoints (leave it null)")
    if not isinstance(spec.config, dict):
        problems.append(f"config: expected an object of settings, got {type(spec.config).__name__}")
    else:
        try:
            spec.params()
        except (TypeError, ValueError) as exc:
            problems.append(f"config: {exc}")
    wanted = {"sft": "examples", "grpo": "prompts"}.get(spec.algorithm, "rows")
    for name in ("rows", "prompts", "examples"):
        if name != wanted and getattr(spec, name) is not None:
            problems.append(f"{name}: not used by {spec.algorithm} (it trains on {wanted})")
    problems += [f"{wanted}: {p}" for p in _data_problems(spec.algorithm, getattr(spec, wanted))]
    return problems


def _data_problems(algorithm: str, data) -> list[str]:
    if algorithm in PREFERENCE:
        if not isinstance(data, list) or not data:
            return ["expected a non-empty list of {prompt, chosen, rejected} rows"]
        from workers.train.preference import _checked_rows

        try:
            _checked_rows(data)
        except ValueError as exc:
            return [str(exc)]
        return []
    if algorithm == "grpo":
        if not isinstance(data, list) or not data:
            return ["expected a non-empty list of {prompt, reward} entries"]
        problems = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str) or not entry["prompt"]:
                problems.append(f"entry {index}: expected {{prompt, reward}} with a non-empty prompt")
                continue
            problems += [f"entry {index}: reward: {p}" for p in _reward_problems(entry.get("reward"))]
        return problems[:10]
    from workers.train.sft import BUCKETS

    if not isinstance(data, dict) or not any(data.get(bucket) for bucket in BUCKETS):
        return [f"expected {{bucket: [examples]}} with examples in at least one of {', '.join(BUCKETS)}"]
    problems = [f"unknown bucket {name!r} (buckets: {', '.join(BUCKETS)})" for name in data if name not in BUCKETS]
    for bucket in BUCKETS:
        examples = data.get(bucket) or []
        if not isinstance(examples, list):
            problems.append(f"{bucket}: expected a list of examples")
            continue
        problems += [
            f"{bucket} example {i}: expected text prompt and completion"
            for i, e in enumerate(examples)
            if not isinstance(e, dict)
            or not isinstance(e.get("prompt"), str)
            or not isinstance(e.get("completion"), str)
        ][:10]
    return problems


# --- rewards: what a GRPO prompt's reward needs, as data, and the callable built from it in the job


def checker_reward(ground_truth: list, tools: list) -> dict:
    """A prompt's checker reward as a spec carries it: the graded verdict against BFCL-style possible answers,
    by the strict rule (a broken call attempt never pays)."""
    return {"kind": "checker", "ground_truth": ground_truth, "tools": tools}


def solve_f1_reward(implementations: dict[str, str], sub_answers: dict) -> dict:
    """A prompt's Solve-F1 reward (FTRL's step reward): the tools' Python implementations, run in the sandbox,
    and the sub-answers their outputs must contain."""
    return {"kind": "solve_f1", "implementations": implementations, "sub_answers": sub_answers}


def _reward_problems(reward) -> list[str]:
    if not isinstance(reward, dict) or reward.get("kind") not in REWARD_KINDS:
        return [f"expected an object with kind one of {', '.join(REWARD_KINDS)}"]
    if reward["kind"] == "checker":
        problems = [] if isinstance(reward.get("ground_truth"), list) else ["ground_truth: expected a list"]
        return problems + ([] if isinstance(reward.get("tools"), list) else ["tools: expected a list"])
    implementations, sub_answers = reward.get("implementations"), reward.get("sub_answers")
    problems = [] if isinstance(sub_answers, dict) else ["sub_answers: expected an object"]
    if (
        not isinstance(implementations, dict)
        or not implementations
        or not all(isinstance(code, str) and code.strip() for code in implementations.values())
    ):
        problems.append("implementations: expected {tool name: Python source} for every tool")
    return problems


def reward_from_spec(reward: dict) -> Callable[[str], float]:
    """The callable scoring a completion, built from a spec's reward entry."""
    if reward["kind"] == "solve_f1":
        from rewards.execution import Solver

        solver = Solver(reward["implementations"], reward["sub_answers"])
        return lambda text: float(solver(text).step_reward)
    from rewards.checker import Checker

    checker = Checker(reward["ground_truth"], reward["tools"], rule="strict")
    return lambda text: float(checker(text).reward)


# --- files


def write_spec(spec: JobSpec, path: str | Path) -> Path:
    """Write `spec` (validated on construction) as JSON; atomically, so a reader never sees half a spec."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(spec)))
    partial.replace(path)
    return path


def read_spec(path: str | Path) -> JobSpec:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SpecError(f"cannot read the job spec {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SpecError(f"the job spec {path} is not JSON: {exc}") from None
    return JobSpec.from_dict(data)


# --- running


def run_spec(spec: JobSpec, progress: Progress | None = None) -> dict:
    """Train `spec` in this process (one rank of a launched job, or the whole job); the result as a dict."""
    params = spec.params()
    if spec.algorithm == "sft":
        from workers.train.sft import results_summary, warmup_sft

        return results_summary(warmup_sft(spec.policy_path, spec.output_dir, spec.examples, params, progress=progress))
    if spec.algorithm == "grpo":
        from workers.train.grpo import train_grpo

        result = train_grpo(
            spec.policy_path,
            spec.output_dir,
            [p["prompt"] for p in spec.prompts],
            [reward_from_spec(p["reward"]) for p in spec.prompts],
            params,
            progress=progress,
            checkpoint_dir=spec.checkpoint_dir,
            resume=spec.resume,
            progress_tokens=True,
        )
    else:
        from workers.train.preference import train_preference

        result = train_preference(
            spec.policy_path,
            spec.output_dir,
            spec.rows,
            params,
            progress=progress,
            checkpoint_dir=spec.checkpoint_dir,
            resume=spec.resume,
            progress_tokens=True,
        )
    return asdict(result)


def launcher_name() -> str:
    """How this process was started: as launch.run_job says, else guessed from the launchers' variables."""
    if os.environ.get(LAUNCHER_ENV):
        return os.environ[LAUNCHER_ENV]
    if any(key.startswith("ACCELERATE_") for key in os.environ):
        return "accelerate"
    return "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else "python"


def _json_stdout():
    """A private line-buffered handle on stdout for the JSON lines; fd 1 itself now leads to stderr, so whatever
    else is printed (libraries, warnings) cannot break a line."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(private, "w", buffering=1)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m workers.train.job SPEC.json", file=sys.stderr)
        return 2
    from workers.train.launch import die_with_parent

    parent = os.getppid()
    die_with_parent()  # a launcher that dies takes its ranks with it
    if os.getppid() != parent:  # ... including one that died before the line above
        return 1
    rank = int(os.environ.get("RANK") or 0)
    out = _json_stdout()

    def emit(event: dict) -> None:
        if rank == 0:  # the other ranks train the same steps: one voice is enough
            out.write(json.dumps(event) + "\n")

    try:
        spec = read_spec(args[0])
    except SpecError as exc:
        print(f"job spec error: {exc}", file=sys.stderr)
        return 2
    if not Path(spec.policy_path).is_dir():
        print(f"job spec error: policy_path: no such directory {spec.policy_path}", file=sys.stderr)
        return 2
    result = run_spec(spec, progress=lambda update: emit({"event": "progress", **update}))
    world_size = int(os.environ.get("WORLD_SIZE") or 1)
    record = {
        "algorithm": spec.algorithm,
        "world_size": world_size,
        "launcher": launcher_name(),
        "config": asdict(spec.params()),
        "result": result,
    }
    if rank == 0:
        (Path(spec.output_dir) / RESULT_FILE).write_text(json.dumps(record, indent=1))
        emit({"event": "result", **record})
    return 0


if __name__ == "__main__":
    sys.exit(main())
