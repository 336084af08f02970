"""Preference pairs awaiting review, and the audit trail of every change made to them."""
from django.conf import settings
from django.db import models

from apps.rewards.deficiency import DEFICIENCY_CHOICES


class PreferencePair(models.Model):
    """Sibling fragments under one shared prefix: the higher-value one chosen, the lower one rejected."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        EDITED = "edited"  # approved after the chosen fragment was corrected
        REJECTED = "rejected"
        FLAGGED = "flagged"  # needs a reviewer

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="pairs", db_index=False)
    round = models.ForeignKey(
        "training.TrainingRound", null=True, blank=True, on_delete=models.CASCADE, related_name="pairs", db_index=False
    )
    query = models.ForeignKey("catalog.Query", on_delete=models.CASCADE, related_name="pairs")
    tree = models.ForeignKey(
        "search.SearchTree", null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs"
    )
    node = models.ForeignKey(
        "search.TreeNode", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The node whose children the pair compares.",
    )
    chosen_node = models.ForeignKey(
        "search.TreeNode", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rejected_node = models.ForeignKey(
        "search.TreeNode", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prefix = models.TextField(blank=True, help_text="The assistant text both fragments continue.")
    chosen = models.TextField()
    rejected = models.TextField()
    original_chosen = models.TextField(blank=True, help_text="The chosen fragment before an edit.")
    chosen_value = models.FloatField(default=0.0)
    rejected_value = models.FloatField(default=0.0)
    chosen_visits = models.PositiveIntegerField(default=0)
    rejected_visits = models.PositiveIntegerField(default=0)
    gap = models.FloatField(default=0.0, help_text="chosen_value − rejected_value")
    deficiency = models.CharField(max_length=24, choices=DEFICIENCY_CHOICES, blank=True)
    chosen_verdict = models.JSONField(null=True, blank=True)
    rejected_verdict = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every write (optimistic locking).")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_pairs",
        db_index=False,
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    flag_note = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # sha256 of (round, prefix, chosen, rejected): the same pair found twice is stored once.
    dedup_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "dedup_key"], name="pair_unique_dedup")]
        indexes = [
            # review queue and bulk view: status filter, sorted by gap (uncertainty first)
            models.Index(fields=["project", "status", "gap"], name="pair_project_status_gap"),
            # launch gate counts per round
            models.Index(fields=["round", "status"], name="pair_round_status"),
            models.Index(fields=["project", "deficiency"], name="pair_project_deficiency"),
            # "assigned to me" and lease expiry sweeps
            models.Index(fields=["assignee", "status"], name="pair_assignee_status"),
        ]

    def __str__(self) -> str:
        return f"pair #{self.pk} ({self.status})"


class ReviewEvent(models.Model):
    """One change to a pair: who, when, what, and the fields before and after."""

    class Action(models.TextChoices):
        CREATE = "create"
        APPROVE = "approve"
        EDIT = "edit"
        SWAP = "swap"
        REJECT = "reject"
        FLAG = "flag"
        SKIP = "skip"
        UNDO = "undo"
        ASSIGN = "assign"
        RELEASE = "release"
        ADJUDICATE = "adjudicate"

    pair = models.ForeignKey(PreferencePair, on_delete=models.CASCADE, related_name="events", db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_events",
        db_index=False,
    )
    action = models.CharField(max_length=12, choices=Action.choices)
    version = models.PositiveIntegerField(help_text="The pair's version this change produced.")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["pair", "created_at"], name="event_pair_time"),
            models.Index(fields=["user", "created_at"], name="event_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on pair #{self.pair_id} by {self.user}"


class PairAssignment(models.Model):
    """A pair leased to one annotator, and what they decided. With a review overlap k > 1 a pair has up
    to k of these, which is what the agreement figures are computed from."""

    pair = models.ForeignKey(PreferencePair, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pair_assignments")
    leased_until = models.DateTimeField()
    decision = models.CharField(max_length=12, blank=True, help_text="The review action taken; empty while leased.")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pair", "user"], name="assignment_unique_pair_user")]
        indexes = [models.Index(fields=["user", "decision"], name="assignment_user_decision")]

    def __str__(self) -> str:
        return f"pair #{self.pair_id} → {self.user} ({self.decision or 'leased'})"
