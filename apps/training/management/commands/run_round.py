"""`run_round --project NAME [--until select|search|pair|review|train|evaluate] [--auto-approve]`."""
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.projects.models import Project
from apps.training.loop import StageError, round_pair, round_search_prepare, round_select, trees_search
from apps.training.models import Checkpoint, TrainingRound
from apps.training.services import round_create

STAGES = ("select", "search", "pair", "review", "train", "evaluate")
FINAL = (TrainingRound.State.DONE, TrainingRound.State.FAILED, TrainingRound.State.CANCELLED)
SHARD = 64  # trees searched together: one generate call serves them all per step


class Command(BaseCommand):
    help = "Run the project's current round headless, stage by stage, up to --until."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--until", default="pair", choices=STAGES)
        parser.add_argument("--auto-approve", action="store_true", help="Approve every pending pair (no review).")

    def handle(self, *args, **opts):
        try:
            project = Project.objects.get(name=opts["project"])
        except Project.DoesNotExist:
            raise CommandError(f"no project named {opts['project']!r}") from None
        if opts["until"] in ("train", "evaluate") or opts["auto_approve"]:
            raise CommandError("training and evaluation stages are not available yet: use --until select|search|pair")
        rnd = self._current_round(project)
        self.stdout.write(f"round {rnd.number} of {project.name} ({rnd.state}), policy {rnd.policy_in}")
        until = STAGES.index(opts["until"])
        S = TrainingRound.State
        try:
            if rnd.state in (S.DRAFT, S.SELECTING):
                with self._bar("select", "query") as bar:
                    out = round_select(round_id=rnd.pk, progress=self._updater(bar, "done", "total"))
                self.stdout.write(f"select: {out['selected']} of {out['scored']} queries selected ({out['method']})")
                rnd.refresh_from_db()
            if until >= STAGES.index("search") and rnd.state in (S.SELECTING, S.SEARCHING):
                self._search(rnd)
                rnd.refresh_from_db()
            if until >= STAGES.index("pair") and rnd.state in (S.SEARCHING, S.PAIRING):
                with self._bar("pair", "tree") as bar:
                    out = round_pair(round_id=rnd.pk, progress=self._updater(bar, "done", "total"))
                self.stdout.write(f"pair: {out['pairs']} pairs from {out['trees']} trees, waiting for review")
        except StageError as exc:
            raise CommandError(str(exc)) from None
        rnd.refresh_from_db()
        self.stdout.write(self.style.SUCCESS(f"round {rnd.number} is {rnd.state}"))

    def _search(self, rnd: TrainingRound) -> None:
        tree_ids = round_search_prepare(round_id=rnd.pk)
        with self._bar("search", "tree") as bar:
            bar.total = len(tree_ids)
            for base in range(0, len(tree_ids), SHARD):
                trees_search(round_id=rnd.pk, tree_ids=tree_ids[base:base + SHARD],
                             progress=lambda p, base=base: self._search_tick(bar, base, p))
        self.stdout.write(f"search: {len(tree_ids)} trees searched")

    def _current_round(self, project) -> TrainingRound:
        rnd = TrainingRound.objects.filter(project=project).exclude(state__in=FINAL).order_by("-number").first()
        if rnd:
            return rnd
        policy = Checkpoint.objects.filter(project=project).order_by("-created_at").first()
        if policy is None:
            raise CommandError(f"project {project.name!r} has no checkpoint: run build_tiny_model (or register a "
                               "base model) first")
        return round_create(project=project, policy=policy)

    def _bar(self, stage: str, unit: str):
        return tqdm(desc=stage, unit=unit, file=self.stderr, disable=None)

    @staticmethod
    def _updater(bar, done_key: str, total_key: str):
        def update(p: dict) -> None:
            bar.total = p.get(total_key, bar.total)
            bar.n = p.get(done_key, bar.n)
            bar.refresh()
        return update

    @staticmethod
    def _search_tick(bar, base: int, p: dict) -> None:
        bar.n = base + p.get("trees_done", 0)
        bar.set_postfix(nodes=p.get("nodes"), valid_leaves=p.get("valid_leaves"), refresh=False)
        bar.refresh()
