"""Immutable dataset snapshots: the reviewed pairs a round trains on, frozen with a content hash."""

from django.conf import settings
from django.db import models

from apps.search.fields import TokenIdsField
from itool_web.jobs import Job


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
    # RESTRICT: deleting it alone would change (or break) what the snapshot exports; deleting the project
    # deletes both.
    checkpoint = models.ForeignKey(
        "training.Checkpoint",
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="snapshots",
        help_text="The checkpoint whose tokenizer renders the prompts.",
    )
    # sha256 over the frozen rows in order: two snapshots with the same hash export the same bytes.
    content_hash = models.CharField(max_length=64)
    pair_count = models.PositiveIntegerField(default=0)
    filters = models.JSONField(default=dict, blank=True, help_text="How the pairs were chosen.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "content_hash"], name="snapshot_unique_content")]
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
    # RESTRICT: a frozen query is kept while a snapshot holds it, but goes with its project (and the snapshot).
    query = models.ForeignKey("catalog.Query", on_delete=models.RESTRICT, related_name="+")
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
    # The pair's sampled token ids (docs/token-ids.md), copied as frozen; not in the content hash (the texts are).
    prefix_ids = TokenIdsField()
    chosen_ids = TokenIdsField()
    rejected_ids = TokenIdsField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["snapshot", "ordinal"], name="snapshotpair_unique_ordinal")]
        ordering = ["snapshot", "ordinal"]


class SnapshotFile(Job):
    """A snapshot written out as a file in one export format (Parquet for now), made by a worker and downloaded
    when ready. The snapshot never changes, so a file that is done stays right: it is made once per
    (snapshot, format, span, kind)."""

    class Kind(models.TextChoices):
        PARQUET = "parquet"

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="files", db_index=False)
    format = models.CharField(max_length=16, help_text="The row format: trl, openai or sharegpt.")
    span = models.CharField(
        max_length=16,
        default="fragment",
        help_text="trl only: the shared prefix in the prompt (fragment) or in both completions "
        "(completion); always fragment for the other formats.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PARQUET)
    file = models.FileField(
        upload_to="snapshots/", max_length=255, blank=True, help_text="Under MEDIA_ROOT; set when done."
    )
    bytes = models.BigIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0, help_text="Rows written (so far, while running).")
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the file's bytes.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "format", "span", "kind"], name="snapshotfile_unique_variant")
        ]
        ordering = ["snapshot", "format", "span", "kind"]

    def __str__(self) -> str:
        return (
            f"snapshot #{self.snapshot_id} {self.format}{'/' + self.span if self.format == 'trl' else ''} "
            f"{self.kind} ({self.status})"
        )

    @property
    def filename(self) -> str:
        """The name a download is saved under."""
        span = f"-{self.span}" if self.format == "trl" else ""
        return f"snapshot-{self.snapshot_id}-{self.format}{span}.{self.kind}"
