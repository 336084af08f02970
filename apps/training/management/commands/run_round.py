"""`run_round --project NAME [--until select|search|pair|review|train|evaluate] [--auto-approve] [--resume]`."""

from django.core.management.base import BaseCommand, CommandError

from apps.projects.commands import project_or_error
from apps.training.lifecycle import (
    LaunchRefused,
    round_auto_approve,
    round_fail,
    round_gate,
    round_launch,
    round_resume,
)
from apps.training.models import Checkpoint, TrainingRound
from apps.training.pipeline import ORDER, STAGES, enter, next_stage, run_stage, stage_now
from apps.training.selectors import checkpoint_latest
from apps.training.services import round_create, round_defaults
from apps.training.stages.base import StageError
from itool_web.progress import progress_bar
from workers.evaluation import format_change

FINAL = (TrainingRound.State.DONE, TrainingRound.State.FAILED, TrainingRound.State.CANCELLED)
S = TrainingRound.State
A = TrainingRound.Algorithm


class Command(BaseCommand):
    help = (
        "Run the project's current round headless, stage by stage, up to --until (the round goes on from "
        "the state it is in; a new draft round is made when the last one is finished). On a project without "
        "rounds it first runs round 0, the warm-up SFT, then goes on with round 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument(
            "--until", choices=ORDER, help="The last stage to run (default: pair; evaluate with --auto-approve)."
        )
        parser.add_argument(
            "--auto-approve",
            action="store_true",
            help="Approve every pending pair of the round (no human review), then train and "
            "evaluate; fails with the reason when there is nothing to train on.",
        )
        parser.add_argument("--resume", action="store_true", help="Resume the last round if it failed.")
        parser.add_argument(
            "--algorithm",
            choices=[a for a in A.values if a != A.SFT],
            help="Algorithm of a new round (default: simpo); round 0 is always the warm-up SFT.",
        )

    def handle(self, *args, **opts):
        project = project_or_error(opts["project"])
        until = ORDER.index(opts["until"] or ("evaluate" if opts["auto_approve"] else "pair"))
        rnd = self._current_round(project, opts)
        try:
            if rnd.algorithm == A.SFT and rnd.number == 0 and rnd.state not in FINAL:
                # the warm-up has no select, search, pair or review: it trains and is evaluated, whatever --until
                # says of the round after it, which this run then goes on with
                self._announce(rnd)
                self._run(rnd, ORDER.index("evaluate"), False)
                rnd.refresh_from_db()
                self.stdout.write(self.style.SUCCESS(f"round 0 (warm-up) is {rnd.state}"))
                if rnd.state != S.DONE:
                    raise CommandError(f"round 0 (warm-up) is {rnd.state}: {rnd.error or 'see its page'}")
                rnd = self._current_round(project, opts)
            self._announce(rnd)
            self._run(rnd, until, opts["auto_approve"])
        except (StageError, LaunchRefused) as exc:
            raise CommandError(str(exc)) from None
        rnd.refresh_from_db()
        if opts["auto_approve"] and until == ORDER.index("evaluate") and rnd.state != S.DONE:
            raise CommandError(
                f"round {rnd.number} is {rnd.state}, not done: "
                f"{rnd.error or rnd.progress.get('reason') or 'see its page'}"
            )
        self.stdout.write(self.style.SUCCESS(f"round {rnd.number} is {rnd.state}"))

    def _announce(self, rnd: TrainingRound) -> None:
        self.stdout.write(
            f"round {rnd.number} of {rnd.project.name} ({rnd.state}, {rnd.get_algorithm_display()}), "
            f"policy {rnd.policy_in}"
        )

    def _run(self, rnd: TrainingRound, until: int, auto_approve: bool) -> None:
        """Run the round's stages in this process, in the order apps.training.pipeline gives, up to `until`."""
        stage = stage_now(rnd.algorithm, rnd.state)
        while stage is not None and ORDER.index(stage) <= until:
            if rnd.state == S.DRAFT:
                round_launch(round_id=rnd.pk, dispatch=False)
            elif stage == "review":
                if not self._review(rnd, auto_approve, reached_train=ORDER.index("train") <= until):
                    return
            else:
                enter(round_id=rnd.pk, stage=stage)
            if stage != "review":
                out = self._stage(rnd, stage)
                if stage == "evaluate":
                    self._report(out)
                else:
                    self.stdout.write(SUMMARY[stage](out))
            rnd.refresh_from_db()
            if rnd.state in FINAL:
                return
            stage = next_stage(rnd.algorithm, stage)
            if stage == "train" and rnd.algorithm == A.GRPO and ORDER.index("train") <= until:
                self.stdout.write("GRPO trains online on the selected queries: no search, pairs or review")

    def _review(self, rnd: TrainingRound, auto_approve: bool, reached_train: bool) -> bool:
        """Auto-approve if asked, print the gate, and launch training when it holds; False when the run stops."""
        if auto_approve:
            approved = round_auto_approve(round_id=rnd.pk, reason="run_round --auto-approve")
            self.stdout.write(f"review: {approved} pending pairs approved by (auto-approve)")
        gate = round_gate(rnd)
        self.stdout.write(
            f"review gate ({rnd.get_gate_display()}): {'holds' if gate.ok else 'does not hold'} — {gate.reason}"
        )
        if not reached_train:
            return False
        round_launch(round_id=rnd.pk, dispatch=False)  # refused with the gate's reason when it fails
        rnd.refresh_from_db()
        self.stdout.write(f"launch: snapshot #{rnd.snapshot_id} frozen ({rnd.progress.get('snapshot_pairs')} pairs)")
        return True

    def _report(self, out: dict) -> None:
        """Every before → after figure with its paired bootstrap interval, then the deficiency histogram."""
        before, after = out["before"], out["eval"]
        self.stdout.write(
            f"evaluate: pass@1 {before['pass_rate']:.1%} → {after['pass_rate']:.1%} "
            f"({out['pass_rate_change'] * 100:+.1f} points) on {after['n']} eval queries"
        )
        for change in out.get("changes", []):
            self.stdout.write(f"  {format_change(change)}")
        if after.get("solve_f1") is not None:
            was = before.get("solve_f1")
            self.stdout.write(
                "evaluate: Solve-F1 "
                + (f"{was:.3f} → " if was is not None else "")
                + f"{after['solve_f1']:.3f} on {after['solve_n']} queries with executable tools"
            )
        was, now = before.get("deficiencies", {}), after.get("deficiencies", {})
        names = sorted(set(was) | set(now), key=lambda d: (-now.get(d, 0), d))
        self.stdout.write(
            "deficiencies before → after: "
            + (", ".join(f"{d} {was.get(d, 0)} → {now.get(d, 0)}" for d in names) or "none")
        )

    def _stage(self, rnd: TrainingRound, stage: str) -> dict:
        """Run a stage in this process with a progress bar; a failure marks the round failed at that stage (resume
        with --resume)."""
        spec = STAGES[stage]
        with progress_bar(stage, spec.unit, file=self.stderr) as bar:

            def update(p: dict) -> None:
                bar.total = p.get(spec.total_key, bar.total)
                bar.n = p.get(spec.done_key, bar.n)
                figures = {key: p[key] for key in ("loss", "nodes", "valid_leaves") if p.get(key) is not None}
                if "loss" in figures:
                    figures["loss"] = f"{figures['loss']:.4f}"
                if figures:
                    bar.set_postfix(figures, refresh=False)
                bar.refresh()

            try:
                return run_stage(round_id=rnd.pk, stage=stage, progress=update)
            except (StageError, LaunchRefused):
                raise
            except Exception as exc:
                round_fail(round_id=rnd.pk, stage=stage, error=f"{stage} failed: {type(exc).__name__}: {exc}")
                raise

    def _current_round(self, project, opts) -> TrainingRound:
        last = TrainingRound.objects.filter(project=project).order_by("-number").first()
        if opts["resume"]:
            if last is None or last.state != S.FAILED:
                raise CommandError(
                    f"--resume: the last round of {project.name!r} is {last.state if last else 'missing'}, not failed"
                )
            try:
                return round_resume(round_id=last.pk, dispatch=False)
            except LaunchRefused as exc:
                raise CommandError(str(exc)) from None
        if last is not None and last.state not in FINAL:
            return last
        if last is not None and last.state == S.FAILED:
            self.stderr.write(
                f"round {last.number} failed ({last.error}); starting a new round "
                "(use --resume to continue the failed one)"
            )
        if last is None:  # a fresh project starts with round 0, the warm-up SFT of its base policy
            policy = (
                Checkpoint.objects.filter(project=project, kind__in=[Checkpoint.Kind.TINY, Checkpoint.Kind.BASE])
                .order_by("-created_at")
                .first()
            )
            if policy is None:
                raise CommandError(
                    f"project {project.name!r} has no base checkpoint: run build_tiny_model (or "
                    "register a base model) first"
                )
            return round_create(
                project=project, policy=policy, algorithm=A.SFT, **round_defaults(policy=policy, algorithm=A.SFT)
            )
        policy = (last.policy_out if last.policy_out else None) or checkpoint_latest(project=project)
        if policy is None:
            raise CommandError(
                f"project {project.name!r} has no checkpoint: run build_tiny_model (or register a base model) first"
            )
        algorithm = opts.get("algorithm") or A.SIMPO
        return round_create(
            project=project, policy=policy, algorithm=algorithm, **round_defaults(policy=policy, algorithm=algorithm)
        )


def _train_line(out: dict) -> str:
    loss = out.get("last_loss", out.get("final_loss"))
    where = f" on {out['world_size']} processes" if out.get("world_size", 1) > 1 else ""
    return f"train: checkpoint #{out['checkpoint']}{where}" + (f", final loss {loss:.4f}" if loss is not None else "")


# The line each stage prints when it ends (evaluate prints its figures, `_report`).
SUMMARY = {
    "select": lambda out: (
        f"select: {out['selected']} of {out['scored']} queries selected ({out['method']})"
        + (f" — {out['reason']}" if out.get("reason") else "")
    ),
    "search": lambda out: f"search: {out['trees']} trees searched",
    "pair": lambda out: (
        f"pair: {out['pairs']} pairs from {out['trees']} trees" + (f" — {out['reason']}" if out.get("reason") else "")
    ),
    "train": _train_line,
}
