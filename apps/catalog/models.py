"""Tools and queries (the training and eval data), and the import jobs that bring them in."""

from django.conf import settings
from django.db import models

from itool_web.jobs import Job


class Tool(models.Model):
    """A function the policy may call: an OpenAI-style schema, and optionally its implementation."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="tools", db_index=False)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, help_text="JSON schema of the arguments (type object).")
    implementation = models.TextField(
        blank=True, help_text="Python source defining a function of this name (run in the sandbox)."
    )
    # sha256 of the canonical {name, description, parameters}: one row per distinct schema.
    schema_hash = models.CharField(max_length=64)
    source = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name", "schema_hash"], name="tool_unique_schema")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def as_openai(self) -> dict:
        """The tool in OpenAI `tools=[...]` form."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class Query(models.Model):
    """One prompt the policy answers with tool calls, and what a right answer is."""

    class Kind(models.TextChoices):
        SINGLE = "single", "single call"
        PARALLEL = "parallel", "parallel calls"
        MULTIPLE = "multiple", "choice among tools"
        PARALLEL_MULTIPLE = "parallel_multiple", "parallel calls, several tools"
        MULTI_HOP = "multi_hop", "multi-hop"
        IRRELEVANCE = "irrelevance", "irrelevance (no tool fits)"
        MISSING_INFO = "missing_info", "missing information (ask)"

    class Split(models.TextChoices):
        TRAIN = "train", "train"
        EVAL = "eval", "eval"

    class Bucket(models.TextChoices):
        EASY = "easy", "easy"
        MEDIUM = "medium", "medium"
        HARD = "hard", "hard"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="queries", db_index=False)
    external_id = models.CharField(max_length=255, help_text="Stable id from the source; re-imports skip it.")
    source = models.CharField(max_length=32, help_text="Import format or generator.")
    messages = models.JSONField(help_text="OpenAI-style chat messages up to the turn to answer.")
    tools = models.ManyToManyField(Tool, through="QueryTool", related_name="queries")
    ground_truth = models.JSONField(
        null=True,
        blank=True,
        help_text='BFCL possible answers [{"func": {"param": [values]}}]; [] = no call is right; '
        "empty = unknown (execution reward only).",
    )
    reference_output = models.TextField(blank=True, help_text="A right answer as raw text (SFT target).")
    sub_answers = models.JSONField(
        default=dict, blank=True, help_text="FTRL unsolved set: tool name → answers its output must contain."
    )
    final_answer = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.SINGLE)
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.TRAIN)
    difficulty = models.FloatField(default=0.0, help_text="0 (easy) … 1 (hard).")
    difficulty_bucket = models.CharField(max_length=8, choices=Bucket.choices, default=Bucket.EASY)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the imported content.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="query_unique_external_id")]
        indexes = [
            models.Index(fields=["project", "split", "difficulty_bucket"], name="query_project_split_bucket"),
            models.Index(fields=["project", "kind"], name="query_project_kind"),
        ]
        verbose_name_plural = "queries"

    def __str__(self) -> str:
        return self.external_id

    def ordered_tools(self) -> list[Tool]:
        """The offered tools in prompt order (uses a prefetched `query_tools__tool` when present)."""
        return [qt.tool for qt in self.query_tools.all()]

    def openai_tools(self) -> list[dict]:
        """The offered tools in OpenAI form, in prompt order (what prompts, checkers and exports are given)."""
        return [tool.as_openai() for tool in self.ordered_tools()]


class QueryTool(models.Model):
    """The tools offered with a query, in the order the prompt lists them."""

    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="query_tools")
    tool = models.ForeignKey(Tool, on_delete=models.RESTRICT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["query", "position"], name="querytool_unique_position")]
        ordering = ["position"]


class ImportJob(Job):
    """An import started from the admin upload form and run by a worker."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="import_jobs")
    format = models.CharField(max_length=16)
    split = models.CharField(max_length=8, choices=Query.Split.choices, default=Query.Split.TRAIN)
    file = models.FileField(upload_to="imports/%Y/%m/")
    answers_file = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    progress_done = models.BigIntegerField(default=0, help_text="Bytes read so far.")
    progress_total = models.BigIntegerField(default=0, help_text="Bytes in the file.")
    counts = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker running it (the reaper reads it)."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import #{self.pk} {self.original_name} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.progress_done / self.progress_total) if self.progress_total else 0
