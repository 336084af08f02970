"""Writes to training rounds: creating them and moving them through their states (only through here)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .models import Checkpoint, TrainingRound

State = TrainingRound.State

# Where a round may go from each state. failed / cancelled / done are final.
TRANSITIONS: dict[str, set[str]] = {
    State.DRAFT: {State.SELECTING, State.TRAINING, State.CANCELLED},  # round 0 and GRPO skip the search
    State.SELECTING: {State.SEARCHING, State.TRAINING, State.FAILED, State.CANCELLED},
    State.SEARCHING: {State.PAIRING, State.FAILED, State.CANCELLED},
    State.PAIRING: {State.REVIEWING, State.FAILED, State.CANCELLED},
    State.REVIEWING: {State.TRAINING, State.FAILED, State.CANCELLED},
    State.TRAINING: {State.EVALUATING, State.FAILED, State.CANCELLED},
    State.EVALUATING: {State.DONE, State.FAILED, State.CANCELLED},
    State.DONE: set(),
    # A failed round can be resumed at the stage that failed (lifecycle.round_resume), or cancelled.
    State.FAILED: {State.SELECTING, State.SEARCHING, State.PAIRING, State.TRAINING, State.EVALUATING, State.CANCELLED},
    State.CANCELLED: set(),
}


class InvalidTransition(ValueError):
    """A state change the lifecycle does not allow; the message says what is allowed."""


# --- the settings a round gets when nobody gives any (run_round) -------------------------------------------
# What the demo learned on the tiny policy (docs/experiments.md); `round_defaults` picks them by the policy a round
# trains. The engines' own defaults are the papers' (iTool: perplexity selection of the hardest 30%, chosen value
# ≥ −0.3); on a young policy those select queries it never solves, whose trees score every rollout the same and
# give no pairs.
# Round 0 of a tiny policy trained from scratch: a fixed step budget, a high learning rate with a cosine decay in
# each curriculum stage, AdamW β2 0.95 (the demo's warm-up; it trains 2,500 steps on 16,000 queries — a small
# project needs fewer to learn the call format).
TINY_WARMUP = {
    "max_steps": 600,
    "learning_rate": 1e-2,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 30,
    "adam_beta2": 0.95,
}
# Search the queries the policy solves sometimes (1 to 7 of 8 samples right): their trees hold right and wrong
# branches side by side. Pass rates on at most 3,200 train queries drawn at random; at most 256 searched.
SELECTION = {
    "method": "pass_rate",
    "k": 8,
    "min_rate": 0.125,
    "threshold": 1.0,
    "max_tokens": 96,
    "candidates": 3200,
    "max_queries": 256,
}
# Keep a pair only when most rollouts below its chosen fragment are right.
PAIRS = {"chosen_value_min": 0.5}
# SimPO (iTool's β 2.5, γ 0.5) plus an SFT term on the chosen fragment, at the tiny policy's learning rate.
TINY_SIMPO = {"epochs": 3, "batch_size": 8, "learning_rate": 2e-4, "sft_weight": 1.0}


def policy_root(policy: Checkpoint | None) -> Checkpoint | None:
    """The checkpoint a policy was trained from at the start (itself when it has no parent)."""
    seen = set()
    while policy is not None and policy.parent_id is not None and policy.pk not in seen:
        seen.add(policy.pk)
        policy = policy.parent
    return policy


def round_defaults(*, policy: Checkpoint | None, algorithm: str) -> dict:
    """`round_create` keyword arguments for a round nobody configured: the warm-up's settings for round 0 (sft),
    else pass-rate selection of the queries the policy solves sometimes and the demo's pair filter, with the
    tiny policy's SimPO settings when the policy grew from a tiny model. Real (base) policies keep the trainers'
    defaults."""
    tiny = getattr(policy_root(policy), "kind", None) == Checkpoint.Kind.TINY
    if algorithm == TrainingRound.Algorithm.SFT:
        return {"hyperparameters": {"warmup": dict(TINY_WARMUP) if tiny else {}}}
    train = dict(TINY_SIMPO) if tiny and algorithm == TrainingRound.Algorithm.SIMPO else {}
    return {"selection": dict(SELECTION), "hyperparameters": {"train": train, "pairs": dict(PAIRS)}}


def round_create(
    *,
    project,
    algorithm: str = TrainingRound.Algorithm.SIMPO,
    policy: Checkpoint | None = None,
    selection: dict | None = None,
    search_config: dict | None = None,
    hyperparameters: dict | None = None,
    created_by=None,
) -> TrainingRound:
    """A new draft round numbered after the project's last; its policy defaults to the last round's output."""
    with transaction.atomic():
        last = TrainingRound.objects.select_for_update().filter(project=project).aggregate(n=Max("number"))["n"]
        if policy is None:
            previous = (
                TrainingRound.objects.filter(project=project, policy_out__isnull=False).order_by("-number").first()
            )
            policy = previous.policy_out if previous else None
        return TrainingRound.objects.create(
            project=project,
            number=0 if last is None else last + 1,
            algorithm=algorithm,
            policy_in=policy,
            selection=selection or {},
            search_config=search_config or {},
            hyperparameters=hyperparameters or {},
            created_by=created_by,
        )


def round_transition(*, round_id: int, to: str, error: str | None = None, **fields) -> TrainingRound:
    """Move a round to state `to` (with any other fields to set), or refuse with InvalidTransition.
    `error` replaces the round's error message when given ("" clears it)."""
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().get(pk=round_id)
        allowed = TRANSITIONS[rnd.state]
        if to not in allowed:
            options = ", ".join(sorted(allowed)) or "none (final state)"
            raise InvalidTransition(f"round {rnd.number} is {rnd.state}: it cannot become {to} (allowed: {options})")
        rnd.state = to
        now = timezone.now()
        if rnd.started_at is None and to not in (State.CANCELLED,):
            rnd.started_at = now
        rnd.finished_at = now if to in (State.DONE, State.FAILED, State.CANCELLED) else None
        if error is not None:
            rnd.error = error[:10_000]
        for name, value in fields.items():
            setattr(rnd, name, value)
        rnd.save()
        return rnd


MAX_LOSS_POINTS = 400


def round_progress(*, round_id: int, loss_point: tuple[int, float] | None = None, **progress) -> None:
    """Merge progress figures (stage, counts, step, loss) into the round, for pages, REST and the CLI; a
    `loss_point` (step, loss) is appended to the round's loss curve (thinned to MAX_LOSS_POINTS).
    A key given as None is removed."""
    with transaction.atomic():
        rnd = TrainingRound.objects.select_for_update().only("progress").get(pk=round_id)
        merged = {**rnd.progress, **progress}
        if loss_point is not None:
            curve = [*merged.get("losses", []), [int(loss_point[0]), float(loss_point[1])]]
            if len(curve) > MAX_LOSS_POINTS:  # keep the shape: drop every other point of the older half
                half = len(curve) // 2
                curve = curve[:half:2] + curve[half:]
            merged["losses"] = curve
        rnd.progress = {k: v for k, v in merged.items() if v is not None}
        rnd.save(update_fields=["progress", "updated_at"])


def checkpoint_register(
    *,
    project,
    name: str,
    path: str,
    kind: str,
    parent: Checkpoint | None = None,
    round: TrainingRound | None = None,
    config: dict | None = None,
) -> Checkpoint:
    return Checkpoint.objects.create(
        project=project, name=name, path=path, kind=kind, parent=parent, round=round, config=config or {}
    )
