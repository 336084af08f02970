"""Project and Membership: every row of the loop belongs to one project; members have one role."""

from django.conf import settings
from django.db import models


class Project(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators beside each pair.")
    lease_minutes = models.PositiveIntegerField(
        default=30, help_text="How long a pair stays assigned to one annotator."
    )
    review_overlap = models.PositiveSmallIntegerField(
        default=1, help_text="How many annotators see each pair (k > 1 measures agreement)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"  # reviews pairs
        REVIEWER = "reviewer", "Reviewer"  # adjudicates flagged and edited pairs
        ADMIN = "admin", "Admin"  # everything, including launching rounds

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]
        indexes = [models.Index(fields=["user", "role"], name="membership_user_role")]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} · {self.project}"
