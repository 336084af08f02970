"""`warmup --project NAME`: round 0, the easy-to-hard SFT of the tiny (or base) policy, then its eval score."""

from django.core.management.base import BaseCommand, CommandError

from apps.projects.commands import project_or_error
from apps.training.models import Checkpoint, TrainingRound
from apps.training.pipeline import round_warmup
from apps.training.services import round_create
from apps.training.stages.base import StageError
from itool_web.progress import progress_bar
from workers.train.sft import WarmupConfig


class Command(BaseCommand):
    help = "Run round 0: warm-up SFT on the train split (easy, then medium, then hard), then evaluate."

    def add_arguments(self, parser):
        defaults = WarmupConfig()
        parser.add_argument("--project", required=True)
        parser.add_argument("--epochs", type=float, default=defaults.epochs, help="Passes over each stage's data.")
        parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument(
            "--max-steps",
            type=int,
            default=defaults.max_steps,
            help="Optimizer steps over all stages, shared out by their rows (-1: --epochs decide).",
        )
        parser.add_argument(
            "--lr-scheduler",
            default=defaults.lr_scheduler_type,
            choices=("linear", "cosine", "constant", "constant_with_warmup"),
            help="Learning-rate schedule within each stage.",
        )
        parser.add_argument(
            "--warmup-steps",
            type=int,
            default=defaults.warmup_steps,
            help="Linear learning-rate warm-up at the start of each stage.",
        )
        parser.add_argument(
            "--adam-beta2",
            type=float,
            default=defaults.adam_beta2,
            help="AdamW's beta2 (0.95 suits a small model trained from scratch).",
        )
        parser.add_argument(
            "--eval-limit",
            type=int,
            default=None,
            help="Score the warmed-up policy on the first N eval queries (default: all).",
        )
        parser.add_argument("--lora", action="store_true", help="Train LoRA adapters (merged when saved).")

    def handle(self, *args, **opts):
        project = project_or_error(opts["project"])
        if TrainingRound.objects.filter(project=project, number=0, state=TrainingRound.State.DONE).exists():
            raise CommandError(f"round 0 of {project.name} is already done")
        policy = Checkpoint.objects.filter(project=project, kind__in=["tiny", "base"]).order_by("-created_at").first()
        if policy is None:
            raise CommandError(f"project {project.name!r} has no base checkpoint: run build_tiny_model first")
        if opts["eval_limit"] is not None and opts["eval_limit"] < 1:
            raise CommandError(f"--eval-limit must be at least 1, got {opts['eval_limit']}")
        try:
            config = WarmupConfig(
                epochs=opts["epochs"],
                learning_rate=opts["learning_rate"],
                batch_size=opts["batch_size"],
                lora=opts["lora"],
                max_steps=opts["max_steps"],
                lr_scheduler_type=opts["lr_scheduler"],
                warmup_steps=opts["warmup_steps"],
                adam_beta2=opts["adam_beta2"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        rnd = TrainingRound.objects.filter(project=project, number=0).first() or round_create(
            project=project, algorithm="sft", policy=policy
        )
        if rnd.state != TrainingRound.State.DRAFT:
            raise CommandError(f"round 0 is {rnd.state}; start over with a new project")
        if opts["eval_limit"] is not None:
            rnd.hyperparameters = {**rnd.hyperparameters, "eval_limit": opts["eval_limit"]}
            rnd.save(update_fields=["hyperparameters", "updated_at"])
        bar = progress_bar("warm-up", "step", file=self.stderr)

        def progress(p: dict) -> None:
            if p["stage"] == "train":
                bar.set_description(f"warm-up ({p['bucket']})")
                bar.total, bar.n = p["max_steps"], p["step"]
                bar.set_postfix(loss=f"{p['loss']:.3f}", refresh=False)
            else:
                bar.set_description("evaluate")
                bar.total, bar.n = p["total"], p["done"]
            bar.refresh()

        try:
            out = round_warmup(round_id=rnd.pk, config=config, progress=progress)
        except StageError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        for b in out["buckets"]:
            self.stdout.write(
                f"  {b['bucket']:>6}: {b['examples']} examples, {b['steps']} steps, "
                f"loss {b['first_loss']:.3f} → {b['last_loss']:.3f} ({b['seconds']:.0f} s)"
            )
        ev = out["eval"]
        kinds = ", ".join(f"{k} {v['pass_rate']:.0%}" for k, v in ev["by_kind"].items())
        self.stdout.write(
            self.style.SUCCESS(f"round 0 done: eval pass@1 {ev['pass_rate']:.1%} on {ev['n']} queries ({kinds})")
        )
