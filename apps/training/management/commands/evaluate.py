"""`evaluate --project NAME [--checkpoint ID|latest] [--source bfcl] [--limit N]`: score a checkpoint on the eval
split, outside any round (e.g. on BFCL's categories imported with `import_data --format bfcl --split eval`)."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.projects.commands import project_or_error
from apps.training.models import Checkpoint
from apps.training.selectors import checkpoint_latest
from apps.training.stages.base import StageError
from apps.training.stages.evaluate import checkpoint_evaluate


class Command(BaseCommand):
    help = (
        "Score a checkpoint on the project's eval split (greedy pass@1 per query kind, deficiencies, Solve-F1 "
        "where tools run, pass@1 per BFCL category for imported BFCL queries); stored as an EvalRun."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument(
            "--checkpoint", default="latest", help="A checkpoint id of the project, or 'latest' (the newest; default)."
        )
        parser.add_argument(
            "--source",
            default=None,
            help="Only eval queries from this source (an import format such as bfcl, or generated).",
        )
        parser.add_argument("--limit", type=int, default=None, help="Only the first N eval queries.")

    def handle(self, *args, **opts):
        project = project_or_error(opts["project"])
        if opts["limit"] is not None and opts["limit"] < 1:
            raise CommandError(f"--limit must be at least 1, got {opts['limit']}")
        checkpoints = Checkpoint.objects.filter(project=project)
        if opts["checkpoint"] == "latest":
            checkpoint = checkpoint_latest(project=project)
            if checkpoint is None:
                raise CommandError(f"project {project.name!r} has no checkpoint: run build_tiny_model or a round")
        else:
            try:
                checkpoint = checkpoints.get(pk=int(opts["checkpoint"]))
            except (ValueError, Checkpoint.DoesNotExist):
                raise CommandError(
                    f"project {project.name!r} has no checkpoint {opts['checkpoint']!r} (give its id, or 'latest')"
                ) from None
        bar = tqdm(desc="evaluate", unit="query", file=self.stderr, disable=None)

        def progress(p: dict) -> None:
            bar.total, bar.n = p["total"], p["done"]
            bar.refresh()

        try:
            metrics = checkpoint_evaluate(
                checkpoint=checkpoint, progress=progress, limit=opts["limit"], source=opts["source"]
            )
        except StageError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(
            f"checkpoint #{checkpoint.pk} {checkpoint.name!r}: pass@1 {metrics['pass_rate']:.1%} on "
            f"{metrics['n']} eval queries (BFCL rule {metrics['pass_rate_bfcl']:.1%}"
            + (
                f"; over-refusal {metrics['over_refusal']:.1%} of {metrics['call_n']} call queries)"
                if metrics["over_refusal"] is not None
                else ")"
            )
        )
        if metrics.get("solve_f1") is not None:
            self.stdout.write(
                f"  Solve-F1 {metrics['solve_f1']:.3f} on {metrics['solve_n']} queries with executable tools"
            )
        for label, groups in (("kind", metrics["by_kind"]), ("BFCL category", metrics.get("by_category", {}))):
            for name, figures in groups.items():
                self.stdout.write(f"  {label} {name}: {figures['pass_rate']:.1%} (n={figures['n']})")
