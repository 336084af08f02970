"""Immutable dataset snapshots: the reviewed pairs a round trains on, frozen with a content hash."""
from django.conf import settings
from django.db import models


class ImmutableError(Exception):
    """Raised on an attempt to change a frozen snapshot."""


class _FrozenModel(models.Model):
    """Rows are written once; saving an existing row is refused."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ImmutableError(f"{type(self).__name__} #{self.pk} is immutable")
        super().save(*args, **kwargs)


class DatasetSnapshot(_FrozenModel):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="snapshots", db_index=False)
    round = models.ForeignKey(
        "training.TrainingRound", null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots"
    )
    name = models.CharField(max_length=200)
    # The policy whose chat template renders the trl prompts: the round's policy_in when frozen for a round.
    # PROTECT: deleting it would change (or break) what the snapshot exports.
    checkpoint = models.ForeignKey(
        "training.Checkpoint", null=True, blank=True, on_delete=models.PROTECT, related_name="snapshots",
        help_text="The checkpoint whose tokenizer renders the prompts.",
    )
    # sha256 over the frozen rows in order: two snapshots with the same hash export the same bytes.
    content_hash = models.CharField(max_length=64)
    pair_count = models.PositiveIntegerField(default=0)
    filters = models.JSONField(default=dict, blank=True, help_text="How the pairs were chosen.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="snapshot_unique_content")
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_hash[:12]})"


class SnapshotPair(_FrozenModel):
    """A pair's texts as they were when frozen; later edits to the pair do not reach the snapshot."""

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="items", db_index=False)
    ordinal = models.PositiveIntegerField()
    pair = models.ForeignKey(
        "curation.PreferencePair", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    query = models.ForeignKey("catalog.Query", on_delete=models.PROTECT, related_name="+")
    prefix = models.TextField(blank=True)
    chosen = models.TextField()
    rejected = models.TextField()
    deficiency = models.CharField(max_length=24, blank=True)
    gap = models.FloatField(default=0.0)
    status = models.CharField(max_length=10)
    # Whether each fragment ends the answer (its tree node is terminal). A fragment that stops mid-answer is
    # trained without an EOS after it: an EOS there would teach the policy to stop after the fragment.
    chosen_ends = models.BooleanField(default=True)
    rejected_ends = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["snapshot", "ordinal"], name="snapshotpair_unique_ordinal")]
        ordering = ["snapshot", "ordinal"]
