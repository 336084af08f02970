"""Preference pairs awaiting review, and the audit trail of every change made to them."""

from django.conf import settings
from django.db import models

from apps.search.fields import TokenIdsField
from rewards.deficiency import DEFICIENCY_CHOICES


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
        "search.TreeNode",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
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
    # The token ids the policy sampled (docs/token-ids.md): the prefix's (after the prompt's) and each fragment's.
    # Null when the search's backend gave none; an edit of the chosen text drops chosen_ids (training then
    # tokenises the edited text on its own, after the exact prompt + prefix ids).
    prefix_ids = TokenIdsField()
    chosen_ids = TokenIdsField()
    rejected_ids = TokenIdsField()
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
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_pairs",
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
            # bulk view without a status filter: pages in gap order (keyset on gap, id)
            models.Index(fields=["project", "gap", "id"], name="pair_project_gap"),
            # the reviewers' queue in gap order, and its count: flagged and edited pairs only
            models.Index(
                fields=["project", "gap", "id"],
                name="pair_adjudication_gap",
                condition=models.Q(status__in=["flagged", "edited"]),
            ),
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
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="review_events",
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


# --- review figures kept as running counts -------------------------------------------------------------
# The dashboard reads these instead of scanning pairs, events and assignments. Each count is the number of
# rows with its key in one table, kept by database triggers (migration 0004) in the same statement as every
# insert, update or delete of those rows, whatever code makes it (services, admin, cascades, bulk loads, raw
# SQL): PairCount counts pairs, ReviewerCount review events, AgreementCount agreement cells — which the
# review services rewrite for a pair, with its row locked, whenever its decisions or verdicts change.
# `rebuild_review_stats` recomputes them all from the rows. Counts hold plain integer ids, no foreign keys:
# a count is a number about rows, and needs no cascade when its project, round or user goes.


class PairCount(models.Model):
    """How many of a project's pairs are in one round, with one deficiency, in one status."""

    project_id = models.BigIntegerField()
    round_id = models.BigIntegerField(help_text="0 for pairs in no round.")
    deficiency = models.CharField(max_length=24, blank=True)
    status = models.CharField(max_length=10)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project_id", "round_id", "deficiency", "status"], name="pair_count_key")
        ]

    def __str__(self) -> str:
        return f"project {self.project_id} round {self.round_id} {self.deficiency or 'none'} {self.status}: {self.n}"


class ReviewerCount(models.Model):
    """How many review events of one action one person made in a project (who reviewed what)."""

    project_id = models.BigIntegerField()
    user_id = models.BigIntegerField(help_text="0 for events whose user was deleted.")
    action = models.CharField(max_length=12)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project_id", "user_id", "action"], name="reviewer_count_key")]

    def __str__(self) -> str:
        return f"project {self.project_id} user {self.user_id} {self.action}: {self.n}"


class AgreementKind(models.TextChoices):
    ANNOTATORS = "annotators"  # rater a and b: two people (a's id < b's id) who approved or rejected the pair
    CHECKER = "checker"  # rater a: the people's majority, b: the checker's own label; rater ids are 0


class AgreementCell(models.Model):
    """One pair's share of its project's agreement tables (see `agreement.pair_tally`): rater a said
    label_a and rater b said label_b on this pair. The review services rewrite a pair's cells whenever its
    decisions or verdicts change; they go with the pair when it is deleted."""

    pair = models.ForeignKey(PreferencePair, on_delete=models.CASCADE, related_name="+", db_index=False)
    project_id = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=AgreementKind.choices)
    rater_a = models.BigIntegerField()
    rater_b = models.BigIntegerField()
    label_a = models.CharField(max_length=12)
    label_b = models.CharField(max_length=12)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pair", "kind", "rater_a", "rater_b"], name="agreement_cell_key")
        ]

    def __str__(self) -> str:
        return f"pair #{self.pair_id} {self.kind} {self.rater_a}:{self.label_a} × {self.rater_b}:{self.label_b}"


class AgreementCount(models.Model):
    """How many agreement cells of a project have one key: one cell of its contingency tables."""

    Kind = AgreementKind

    project_id = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=AgreementKind.choices)
    rater_a = models.BigIntegerField()
    rater_b = models.BigIntegerField()
    label_a = models.CharField(max_length=12)
    label_b = models.CharField(max_length=12)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project_id", "kind", "rater_a", "rater_b", "label_a", "label_b"], name="agreement_count_key"
            )
        ]

    def __str__(self) -> str:
        pair = f"{self.rater_a}:{self.label_a} × {self.rater_b}:{self.label_b}"
        return f"project {self.project_id} {self.kind} {pair}: {self.n}"
