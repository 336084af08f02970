"""The train stage: the round's policy trained by its algorithm — warm-up SFT (round 0), preference optimisation
(DPO / IPO / SimPO / ORPO) on the frozen snapshot, or GRPO online on the selected queries — as a launched job.

The stage writes a job spec (workers/train/job.py: the policy, the rows or prompts with everything a reward
needs, the algorithm's settings, output and trainer-state directories) and runs it with `accelerate launch`
(workers/train/launch.py) on TRAIN_NUM_PROCESSES processes, or as TRAIN_ACCELERATE_CONFIG says (DDP, FSDP,
DeepSpeed; docs/scaling.md). Rank 0's progress lines become the round's progress and loss curve; a cancelled
round's job is stopped; a failed job's exit code and stderr tail become the round's error; a job run again after
a kill resumes from its last trainer checkpoint. The registered checkpoint records the world size and launcher.
"""

from __future__ import annotations

from pathlib import Path

from apps.catalog.models import Query

from ..models import RoundQuery, TrainingRound
from ..policy import policy_tokenizer, query_prompt, query_tools
from ..services import round_progress, round_transition
from .base import Progress, S, StageError, output_dir, stage_round

PROGRESS_KEYS = ("step", "max_steps", "loss", "epoch", "bucket", "reward", "tokens_per_second")


def round_train(*, round_id: int, progress: Progress | None = None, check=None) -> dict:
    """Train the round's policy by its algorithm and register the result as the round's output checkpoint;
    the round moves on to evaluating. `check()` is called with every progress report and every second while the
    job runs (it raises to stop a cancelled round; the job is then terminated). Preference and GRPO rounds resume
    from their last trainer checkpoint when run again."""
    from ..services import checkpoint_register

    rnd = stage_round(round_id)
    if rnd.state == S.DRAFT:
        round_transition(round_id=round_id, to=S.TRAINING)
    elif rnd.state != S.TRAINING:
        raise StageError(f"round {rnd.number} is {rnd.state}, not training")

    def tick(p: dict) -> None:
        loss = p.get("loss")  # every trainer counts its steps from the start (the warm-up's stages run in one)
        point = (p["step"], loss) if loss is not None and p.get("step") is not None else None
        round_progress(
            round_id=round_id,
            stage="train",
            loss_point=point,
            **{k: v for k, v in p.items() if k in PROGRESS_KEYS},
        )
        if check:
            check()
        if progress:
            progress({"stage": "train", **p})

    spec, kind = training_job(rnd)
    try:
        record = job_run(
            spec,
            output_dir(rnd, f"job-{rnd.pk}"),
            tick,
            check,
            on_start=lambda pid: round_progress(round_id=round_id, job_pid=pid),
        )
    finally:
        round_progress(round_id=round_id, job_pid=None)
    summary = job_summary(record, resumed=spec.resume)
    checkpoint = checkpoint_register(
        project=rnd.project,
        name=f"{rnd.project.name}-round{rnd.number}-{rnd.algorithm}",
        path=spec.output_dir,
        kind=kind,
        parent=rnd.policy_in,
        round=rnd,
        config={"algorithm": rnd.algorithm, "config": record["config"], **summary},
    )
    round_transition(round_id=round_id, to=S.EVALUATING, policy_out=checkpoint)
    round_progress(round_id=round_id, stage="evaluate", train=summary)
    return {"checkpoint": checkpoint.pk, **summary}


def job_run(spec, job_dir: Path, progress: Progress | None = None, check=None, on_start=None) -> dict:
    """Run a training job (a workers.train.job.JobSpec) as the settings say — TRAIN_NUM_PROCESSES processes, or
    TRAIN_ACCELERATE_CONFIG — with its spec and whole stderr kept in `job_dir`; its result record (see run_job)."""
    from django.conf import settings

    from workers.train.job import write_spec
    from workers.train.launch import run_job

    return run_job(
        write_spec(spec, job_dir / "spec.json"),
        progress,
        check,
        num_processes=settings.TRAIN_NUM_PROCESSES,
        accelerate_config=settings.TRAIN_ACCELERATE_CONFIG or None,
        env=_job_env(settings.TRAIN_NUM_PROCESSES),
        log_path=job_dir / "stderr.log",
        on_start=on_start,
    )


def _job_env(processes: int) -> dict:
    """The job's processes share the machine's cores (unless OMP_NUM_THREADS says otherwise)."""
    import os

    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, processes)))}


def training_job(rnd: TrainingRound):
    """The job spec that trains `rnd` (and the checkpoint kind it makes): validated, nothing started."""
    from workers.train.job import JobSpec, SpecError

    algorithm = rnd.algorithm
    base = {"algorithm": algorithm, "policy_path": rnd.policy_in.path}
    try:
        if algorithm == TrainingRound.Algorithm.SFT:
            return JobSpec(
                **base,
                output_dir=str(output_dir(rnd, "sft")),
                config=rnd.hyperparameters.get("warmup", {}),
                examples=_warmup_examples(rnd),
            ), "sft"
        scratch = output_dir(rnd, f"trainer-state-{rnd.pk}")  # the row's id: a re-made project never resumes it
        resume = scratch.exists() and any(scratch.glob("checkpoint-*"))
        state = {"checkpoint_dir": str(scratch), "resume": resume}
        if algorithm == TrainingRound.Algorithm.GRPO:
            return JobSpec(
                **base,
                output_dir=str(output_dir(rnd, "grpo")),
                config=rnd.hyperparameters.get("train", {}),
                prompts=_grpo_prompts(rnd),
                **state,
            ), "grpo"
        if rnd.snapshot_id is None:
            raise StageError(f"round {rnd.number} has no dataset snapshot: launch it (the launch freezes one)")
        return JobSpec(
            **base,
            output_dir=str(output_dir(rnd, algorithm)),
            config=rnd.hyperparameters.get("train", {}),
            rows=snapshot_training_rows(rnd.snapshot),
            **state,
        ), "preference"
    except SpecError as exc:
        raise StageError(f"round {rnd.number} cannot train: {exc}") from None


def job_result(record: dict) -> dict:
    """A job's trainer figures without their per-step series (the round's progress has the loss curve)."""
    return {k: v for k, v in record["result"].items() if k not in ("losses", "rewards")}


def job_summary(record: dict, *, resumed: bool) -> dict:
    """What the checkpoint and the round keep of a job's result: its trainer figures (`job_result`), whether it
    resumed, the world size and the launcher."""
    result = job_result(record)
    if record["algorithm"] != "sft":
        result["resumed"] = resumed
    return {**result, "world_size": record["world_size"], "launcher": record["launcher"]}


def _warmup_examples(rnd: TrainingRound) -> dict[str, list[dict]]:
    tokenizer = policy_tokenizer(rnd.policy_in)
    queries = Query.objects.filter(project=rnd.project, split=Query.Split.TRAIN).exclude(reference_output="")
    examples: dict[str, list[dict]] = {}
    for q in queries.prefetch_related("query_tools__tool").order_by("id"):
        examples.setdefault(q.difficulty_bucket, []).append(
            {"prompt": query_prompt(tokenizer, q), "completion": q.reference_output}
        )
    if not examples:
        raise StageError("no train query with a reference answer to warm up on")
    return examples


def snapshot_training_rows(snapshot) -> list[dict]:
    """The rows a preference round trains on: the snapshot's trl export rows, so what is exported is what was
    trained (prompt = the policy's chat template + the shared assistant prefix; chosen / rejected fragments;
    a fragment that stops mid-answer is trained without a closing EOS), with the sampled token ids the rows
    carry (docs/token-ids.md): `prompt_ids` = the rendered chat prompt's ids + the prefix's sampled ids,
    `chosen_ids` / `rejected_ids` (None after an edit of that side: training tokenises its text alone)."""
    from apps.datasets.services import snapshot_rows

    rows = []
    for row in snapshot_rows(snapshot, "trl"):
        train = {
            "prompt": row["prompt"],
            "chosen": row["chosen"],
            "rejected": row["rejected"],
            "chosen_ends": row["metadata"]["chosen_ends"],
            "rejected_ends": row["metadata"]["rejected_ends"],
        }
        if row["prompt_ids"] is not None:
            train.update(prompt_ids=row["prompt_ids"], chosen_ids=row["chosen_ids"], rejected_ids=row["rejected_ids"])
        rows.append(train)
    return rows


def _grpo_prompts(rnd: TrainingRound) -> list[dict]:
    """The selected queries as the GRPO job takes them: the rendered prompt and its reward as data."""
    kind = rnd.hyperparameters.get("train", {}).get("reward", "checker")
    ids = RoundQuery.objects.filter(round=rnd, selected=True).values_list("query_id", flat=True)
    queries = list(Query.objects.filter(pk__in=list(ids)).prefetch_related("query_tools__tool").order_by("id"))
    if not queries:
        raise StageError(f"round {rnd.number} has no selected queries to train on: run the select stage first")
    tokenizer = policy_tokenizer(rnd.policy_in)
    return [{"prompt": query_prompt(tokenizer, q), "reward": reward_spec(kind, q)} for q in queries]


def reward_spec(kind: str, query: Query) -> dict:
    """One query's verifiable reward as a job carries it: the checker's graded reward ("checker", strict: a broken
    call never pays), or FTRL's Solve-F1 step reward ("solve_f1": the completion's calls run in the sandbox,
    2·solved / (calls + 1))."""
    from workers.train.job import checker_reward, solve_f1_reward

    if kind == "solve_f1":
        tools = query.ordered_tools()
        if (
            not tools
            or any(not (tool.implementation or "").strip() for tool in tools)
            or not isinstance(query.sub_answers, dict)
        ):
            raise StageError(
                f"query {query.external_id!r}: the solve_f1 reward needs executable tools and the "
                "query's sub-answers; use reward 'checker'"
            )
        return solve_f1_reward({tool.name: tool.implementation for tool in tools}, query.sub_answers)
    return checker_reward(query.ground_truth, query_tools(query))
