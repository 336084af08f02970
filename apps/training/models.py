"""Training rounds (the loop's unit of iteration), the checkpoints they make, and evaluation runs."""

from django.conf import settings
from django.db import models

from itool_web.jobs import Job


class Checkpoint(models.Model):
    """A policy saved with save_pretrained: loadable by from_pretrained from `path`."""

    class Kind(models.TextChoices):
        BASE = "base", "base model"
        TINY = "tiny", "tiny local model"
        SFT = "sft", "warm-up SFT"
        PREFERENCE = "preference", "preference optimisation"
        GRPO = "grpo", "GRPO"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="checkpoints")
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500, help_text="Folder (or hub id on a GPU host) to load from.")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.BASE)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    round = models.ForeignKey(
        "training.TrainingRound", null=True, blank=True, on_delete=models.SET_NULL, related_name="checkpoints"
    )
    config = models.JSONField(default=dict, blank=True, help_text="How it was built or trained.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class TrainingRound(models.Model):
    """One turn of the loop: select → search → pair → review → train → evaluate."""

    class State(models.TextChoices):
        DRAFT = "draft"
        SELECTING = "selecting"
        SEARCHING = "searching"
        PAIRING = "pairing"
        REVIEWING = "reviewing"
        TRAINING = "training"
        EVALUATING = "evaluating"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Algorithm(models.TextChoices):
        SFT = "sft", "warm-up SFT (round 0)"
        DPO = "dpo", "DPO (sigmoid)"
        IPO = "ipo", "IPO"
        SIMPO = "simpo", "SimPO"
        ORPO = "orpo", "ORPO"
        GRPO = "grpo", "GRPO (online, verifiable reward)"

    class Gate(models.TextChoices):
        ALL_REVIEWED = "all_reviewed", "all pairs reviewed"
        FRACTION_REVIEWED = "fraction_reviewed", "a fraction of pairs reviewed"
        MIN_APPROVED = "min_approved", "a minimum of approved pairs"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="rounds", db_index=False)
    number = models.PositiveIntegerField(help_text="0 is the warm-up SFT.")
    state = models.CharField(max_length=12, choices=State.choices, default=State.DRAFT)
    algorithm = models.CharField(max_length=8, choices=Algorithm.choices, default=Algorithm.SIMPO)
    hyperparameters = models.JSONField(default=dict, blank=True)
    selection = models.JSONField(default=dict, blank=True, help_text="Deficiency selection config.")
    search_config = models.JSONField(default=dict, blank=True, help_text="MCTS config.")
    gate = models.CharField(max_length=20, choices=Gate.choices, default=Gate.ALL_REVIEWED)
    gate_value = models.FloatField(default=1.0, help_text="Fraction for fraction_reviewed, count for min_approved.")
    policy_in = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="rounds_started"
    )
    policy_out = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="rounds_produced"
    )
    snapshot = models.ForeignKey(
        "datasets.DatasetSnapshot", null=True, blank=True, on_delete=models.RESTRICT, related_name="rounds"
    )
    progress = models.JSONField(default=dict, blank=True, help_text="Stage, counts, step, loss.")
    metrics = models.JSONField(default=dict, blank=True)
    task_ids = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="round_unique_number")]
        indexes = [models.Index(fields=["project", "state"], name="round_project_state")]
        ordering = ["project", "number"]

    def __str__(self) -> str:
        return f"{self.project} · round {self.number}"


class RoundQuery(models.Model):
    """A train query scored by the round's selection; the selected ones are searched."""

    round = models.ForeignKey(TrainingRound, on_delete=models.CASCADE, related_name="round_queries", db_index=False)
    query = models.ForeignKey("catalog.Query", on_delete=models.CASCADE, related_name="+")
    score = models.FloatField(help_text="Perplexity of the ground truth, or pass rate over k samples.")
    selected = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "query"], name="roundquery_unique")]
        indexes = [models.Index(fields=["round", "selected"], name="roundquery_round_selected")]


class EvalRun(Job):
    """A checkpoint scored on an eval set: pass rate per kind, deficiency histogram, Solve-F1."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="eval_runs")
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="eval_runs")
    round = models.ForeignKey(TrainingRound, null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_runs")
    split = models.CharField(max_length=32, default="eval", help_text="eval, or a BFCL category.")
    n_queries = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"eval #{self.pk} of {self.checkpoint}"


class EvalResult(models.Model):
    """One eval query's answer in an EvalRun and its verdicts: strict (`valid`, `deficiency`, `detail`,
    `reward`) and by BFCL's rule (`valid_bfcl`). The round page's failures browser reads these; two runs on the
    same queries pair up by query for paired bootstrap intervals."""

    eval_run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results", db_index=False)
    query = models.ForeignKey("catalog.Query", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=24, help_text="The query's kind (single, parallel, irrelevance, ...).")
    output = models.TextField(blank=True, help_text="The policy's raw answer (untrusted text).")
    valid = models.BooleanField(help_text="Right by the strict rule (pass@1).")
    valid_bfcl = models.BooleanField(help_text="Right by BFCL's rule (a broken call on a no-call query passes).")
    deficiency = models.CharField(max_length=24, blank=True, help_text="Strict verdict; empty when right.")
    detail = models.TextField(blank=True)
    reward = models.FloatField()
    expects_call = models.BooleanField(default=True, help_text="The ground truth has calls.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["eval_run", "query"], name="evalresult_unique_query")]
        indexes = [
            models.Index(fields=["eval_run", "kind", "deficiency", "id"], name="evalresult_run_kind_def"),
            models.Index(fields=["eval_run", "deficiency", "id"], name="evalresult_run_def"),
        ]

    def __str__(self) -> str:
        return f"eval #{self.eval_run_id} · query #{self.query_id}: {self.deficiency or 'right'}"
