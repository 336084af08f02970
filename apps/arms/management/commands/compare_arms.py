"""`compare_arms --project NAME --round N [--arms a,b,…] [--seeds K] [--dispatch]`."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.arms.data import TRAINED_ARMS
from apps.arms.selectors import ALL, CALL_KINDS, arms_table
from apps.arms.services import ArmsRefused, arm_fail, arm_run, arms_launch
from apps.projects.commands import project_or_error
from apps.training.models import TrainingRound
from workers.evaluation import KIND_GROUPS


class Command(BaseCommand):
    help = (
        "Controlled comparison: train each arm's data from the round's input checkpoint at the round's training "
        "budget (optimizer steps × batch) with K seeds, evaluate each on the round's eval queries, and print "
        f"the arms table. Arms: {', '.join(TRAINED_ARMS)} (default: all). Finished arms are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--round", type=int, required=True, help="The round's number.")
        parser.add_argument("--arms", default="", help=f"Comma-separated, from: {', '.join(TRAINED_ARMS)}.")
        parser.add_argument("--seeds", type=int, default=1, help="Seeds per arm (0, 1, …, K-1).")
        parser.add_argument(
            "--dispatch",
            action="store_true",
            help="Send the arms to Celery workers (queue gpu) instead of running them here.",
        )

    def handle(self, *args, **opts):
        project = project_or_error(opts["project"])
        try:
            rnd = TrainingRound.objects.get(project=project, number=opts["round"])
        except TrainingRound.DoesNotExist:
            raise CommandError(f"project {project.name!r} has no round {opts['round']}") from None
        try:
            rows = arms_launch(round=rnd, arms=opts["arms"] or None, seeds=opts["seeds"], dispatch=opts["dispatch"])
        except ArmsRefused as exc:
            raise CommandError(str(exc)) from None
        budget = next((r.budget for r in rows if r.budget), None)
        if budget:
            self.stdout.write(
                f"round {rnd.number} budget: {budget['steps']} steps × batch {budget['batch']} ({budget['source']})"
            )
        if opts["dispatch"]:
            self.stdout.write(f"{len(rows)} arm run(s) sent to the gpu queue")
            return
        for row in rows:
            self._run(row)
        self._table(rnd)
        if not rows:
            self.stdout.write("every arm asked for had finished already: nothing trained")

    def _run(self, row) -> None:
        name = f"{row.arm} seed {row.seed}"
        with tqdm(desc=name, unit="step", file=self.stderr, disable=None) as bar:
            plain = bar.disable  # output goes to a log: one plain line per report instead of a bar
            last = {}

            def tick(p: dict) -> None:
                stage = p.get("stage")
                done, total = (
                    (p.get("step"), p.get("max_steps")) if stage == "train" else (p.get("done"), p.get("total"))
                )
                if plain:
                    if stage != last.get("stage") or (done is not None and done != last.get("done")):
                        loss = f" loss {p['loss']:.4f}" if p.get("loss") is not None else ""
                        self.stderr.write(f"{name}: {stage} {done}/{total}{loss}")
                    last.update(stage=stage, done=done)
                    return
                bar.set_description(f"{name} {stage}", refresh=False)
                bar.total, bar.n = total or bar.total, done if done is not None else bar.n
                if p.get("loss") is not None:
                    bar.set_postfix(loss=f"{p['loss']:.4f}", refresh=False)
                bar.refresh()

            try:
                row = arm_run(arm_run_id=row.pk, progress=tick)
            except ArmsRefused as exc:
                arm_fail(arm_run_id=row.pk, error=str(exc))
                raise CommandError(f"{name}: {exc}") from None
            except Exception as exc:
                arm_fail(arm_run_id=row.pk, error=f"{type(exc).__name__}: {exc}")
                raise
        figures = (row.eval_run.metrics if row.eval_run else {}) or {}
        self.stdout.write(
            f"{name}: pass@1 {figures.get('pass_rate', 0):.1%} on {figures.get('n')} eval queries"
            + (f" ({row.budget.get('fitted')})" if row.budget.get("fitted") else "")
        )

    def _table(self, rnd) -> None:
        table = arms_table(round=rnd)
        kinds = table["kinds"]
        self.stdout.write(
            "arm".ljust(12) + "seeds".rjust(6) + "".join(k[:18].rjust(21) for k in kinds) + "over-refusal".rjust(14)
        )
        for row in ([table["baseline"]] if table["baseline"] else []) + table["arms"]:
            cells = []
            for kind in kinds:
                cell = row["cells"].get(kind) or {}
                rate, interval = cell.get("pass_rate"), cell.get("interval")
                text = "—" if rate is None else f"{rate:.1%}"
                if interval:
                    text += (
                        f" {interval['diff'] * 100:+.1f}[{interval['low'] * 100:+.0f},{interval['high'] * 100:+.0f}]"
                    )
                cells.append(text.rjust(21))
            refusal = row["over_refusal"]
            self.stdout.write(
                row["arm"].ljust(12)
                + str(row["seeds"]).rjust(6)
                + "".join(cells)
                + ("—" if refusal is None else f"{refusal:.1%}").rjust(14)
            )
        self.stdout.write(
            "cells: strict pass@1 (mean over seeds) and, against 'input', the change in points "
            f"[95% paired bootstrap interval]; column '{ALL}' = every eval query, '{CALL_KINDS}' = "
            f"{' + '.join(KIND_GROUPS[CALL_KINDS])}"
        )
