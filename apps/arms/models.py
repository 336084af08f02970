"""Arm runs: one alternative training set (an "arm") trained from a round's input policy at the round's training
budget with one seed, and scored on the round's eval queries."""

from django.conf import settings
from django.db import models

from itool_web.jobs import Job


class ArmRun(Job):
    """One (round, arm, seed): its training budget, the checkpoint it made and the EvalRun that scored it."""

    class Arm(models.TextChoices):
        INPUT = "input", "the round's input policy, untrained (the baseline)"
        STEP_PAIRS = "step_pairs", "reviewed step-level pairs (the round itself)"
        UNREVIEWED = "unreviewed", "step-level pairs as extracted, before review"
        WHOLE_PAIRS = "whole_pairs", "whole-response pairs: best vs worst rollout per query"
        RFT = "rft", "SFT on the policy's own correct rollouts"
        SFT = "sft", "SFT on the reference answers (the control)"
        GRPO = "grpo", "GRPO with the verifiable reward"

    round = models.ForeignKey(
        "training.TrainingRound", on_delete=models.CASCADE, related_name="arm_runs", db_index=False
    )  # the unique (round, arm, seed) index leads with it
    arm = models.CharField(max_length=12, choices=Arm.choices)
    seed = models.PositiveIntegerField(default=0)
    checkpoint = models.ForeignKey(
        "training.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    eval_run = models.ForeignKey("training.EvalRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    budget = models.JSONField(
        default=dict,
        blank=True,
        help_text="Optimizer steps, batch, examples, and how the arm's data was fitted to them.",
    )
    metrics = models.JSONField(default=dict, blank=True, help_text="Training summary and eval figures.")
    progress = models.JSONField(default=dict, blank=True, help_text="Stage, step, loss (while running).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "arm", "seed"], name="armrun_unique_round_arm_seed")]
        ordering = ["round", "arm", "seed"]

    def __str__(self) -> str:
        return f"{self.arm} seed {self.seed} of round #{self.round_id}"
