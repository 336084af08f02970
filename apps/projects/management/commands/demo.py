"""`demo`: set up the demo project and serve it, with a worker, on this machine."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db.models import Count

from apps.curation.models import PreferencePair
from apps.projects.models import Project
from apps.projects.services import demo_users_create
from apps.training.lifecycle import FINAL
from apps.training.models import Checkpoint, TrainingRound
from apps.training.services import PAIRS, SELECTION, TINY_SIMPO, round_create

# The demo rounds' settings for the tiny policy are the ones `run_round` gives a tiny policy (apps.training.services:
# SimPO + an SFT term, pass-rate selection of the queries it solves sometimes, the pair filter); docs/experiments.md
# has the figures behind each. The demo picks how many queries each round searches (--search-queries).
DEMO_SIMPO, DEMO_PAIRS = TINY_SIMPO, PAIRS
DEMO_SELECTION = {k: v for k, v in SELECTION.items() if k != "max_queries"}
# The warm-up (round 0): a fixed step budget so its minutes do not grow with the data; a from-scratch model takes
# a high learning rate with a cosine decay in each curriculum stage (docs/experiments.md, "The demo policy").
DEMO_WARMUP = {
    "max_steps": 2500,
    "learning_rate": 1e-2,
    "lr_scheduler": "cosine",
    "warmup_steps": 30,
    "adam_beta2": 0.95,
}


class Command(BaseCommand):
    help = "Migrate, create the demo project, users and environment, then run the web server and a worker."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="demo")
        parser.add_argument(
            "--queries",
            type=int,
            default=20000,
            help="Generated queries in the demo environment (80%% train, 20%% eval).",
        )
        parser.add_argument(
            "--warmup-steps",
            type=int,
            default=DEMO_WARMUP["max_steps"],
            help="Optimizer steps of the warm-up SFT (batches of 32), over its three stages.",
        )
        parser.add_argument("--search-queries", type=int, default=256, help="Queries each demo round searches.")
        parser.add_argument("--eval-queries", type=int, default=800, help="Held-out queries each round is scored on.")
        parser.add_argument(
            "--review",
            action="store_true",
            help="Round 1 waits for people to review its pairs instead of auto-approving them.",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="Set up only; do not start the processes.")

    @contextmanager
    def _phase(self, name: str):
        """Times one part of the demo and prints it (the demo's budget is 15 minutes on a quiet 2-core machine)."""
        start = time.perf_counter()
        self.stdout.write(f"== {name}", ending="\n")
        self.stdout.flush()
        yield
        seconds = time.perf_counter() - start
        self._timings.append((name, seconds))
        self.stdout.write(f"== {name}: {seconds:.0f} s")
        self.stdout.flush()

    def handle(self, *args, **opts):
        self._timings: list[tuple[str, float]] = []
        started = time.perf_counter()
        with self._phase("set-up (migrate, environment)"):
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            project, _ = Project.objects.get_or_create(
                name=opts["project"],
                defaults={"description": "Generated tool-use environment (FTRL's five stages) for the iTool loop."},
            )
            call_command("generate_environment", project=project.name, seed=opts["seed"], queries=opts["queries"])
        self._loop(project, opts)
        self.stdout.write(
            "Time by phase: "
            + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self._timings)
            + f"; total {time.perf_counter() - started:.0f} s"
        )
        passwords = demo_users_create(project=project)
        url = f"http://{opts['host']}:{opts['port']}"
        self.stdout.write(self.style.SUCCESS(f"\nDemo project {project.name!r} is ready."))
        for user, password in passwords.items():
            self.stdout.write(f"  {user:10s} password: {password}")
        self.stdout.write(
            f"\nReview: open {url}/ and log in as annotator, then press the Review button (or go to "
            f"{url}/projects/{project.pk}/pairs/next/): a approves, r rejects, e edits the chosen fragment, "
            f"s swaps, f flags, k skips, u undoes, ? shows every key. The reviewer adjudicates flagged and "
            f"edited pairs; the admin also edits the guidelines.\n"
            f"Rounds: {url}/projects/{project.pk}/rounds/ (as admin: pass@1 across rounds, launch / cancel / "
            f"resume, loss curves). Admin site: {url}/admin/ — Catalog (queries, tools, import jobs with an upload "
            f"form), Training (rounds with launch / cancel / resume actions), Search, Curation, Datasets. "
            f"REST API: {url}/api/docs/\n"
        )
        if opts["no_serve"]:
            return
        self._serve(opts["host"], opts["port"])

    def _loop(self, project: Project, opts: dict) -> None:
        """The tiny policy and its warm-up (round 0); round 1 end to end — select, search, pair, auto-approve
        (or wait for the annotator with --review), SimPO, evaluate — with eval before and after; then round 2
        searched and paired, its pairs waiting for review. Each part is skipped when an earlier run did it."""
        if not Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.TINY).exists():
            with self._phase("tiny model (tokenizer + Qwen2)"):
                call_command(
                    "build_tiny_model",
                    project=project.name,
                    seed=opts["seed"],
                    size="small",
                    output=str(settings.CHECKPOINT_DIR / project.name / "tiny"),
                )
        if not TrainingRound.objects.filter(project=project, number=0, state=TrainingRound.State.DONE).exists():
            with self._phase("round 0: warm-up SFT + eval"):
                call_command(
                    "warmup",
                    project=project.name,
                    eval_limit=opts["eval_queries"],
                    **{**DEMO_WARMUP, "max_steps": opts["warmup_steps"]},
                )
        selection = {**DEMO_SELECTION, "max_queries": opts["search_queries"]}
        hyperparameters = {"train": DEMO_SIMPO, "pairs": DEMO_PAIRS, "eval_limit": opts["eval_queries"]}
        if not TrainingRound.objects.filter(project=project, number=1).exists():
            round_create(
                project=project,
                algorithm=TrainingRound.Algorithm.SIMPO,
                selection=selection,
                hyperparameters=hyperparameters,
            )
        round1 = TrainingRound.objects.get(project=project, number=1)
        if opts["review"]:
            if round1.state not in FINAL:
                with self._phase("round 1: select, search, pair"):
                    call_command("run_round", project=project.name, until="pair")
                self._pairs_waiting(project)
                self.stdout.write(
                    "Round 1 waits for review: approve its pairs in the browser, then launch it "
                    "from its round page (admin) or run `run_round --until evaluate`."
                )
            return
        if round1.state not in FINAL:  # run_round prints the before → after figures itself
            with self._phase("round 1: select, search, pair, approve, train, evaluate"):
                call_command("run_round", project=project.name, until="evaluate", auto_approve=True)
            round1.refresh_from_db()
        else:
            self._before_after(round1)
        if (
            round1.state == TrainingRound.State.DONE
            and not TrainingRound.objects.filter(project=project, number=2).exists()
        ):
            round_create(
                project=project,
                algorithm=TrainingRound.Algorithm.SIMPO,
                selection=selection,
                hyperparameters=hyperparameters,
            )
        if TrainingRound.objects.filter(project=project, number=2).exclude(state__in=FINAL).exists():
            with self._phase("round 2: select, search, pair"):
                call_command("run_round", project=project.name, until="pair")
        self._pairs_waiting(project)

    def _before_after(self, rnd: TrainingRound) -> None:
        """Round 1's figures when an earlier run already finished it (run_round prints them as it ends)."""
        from workers.evaluation import format_change

        before, after = rnd.metrics.get("before"), rnd.metrics.get("eval")
        if not (before and after):
            self.stdout.write(f"round 1 is {rnd.state}{': ' + rnd.error if rnd.error else ''}")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"round 1 ({rnd.get_algorithm_display()} on {rnd.snapshot.pair_count if rnd.snapshot else 0} "
                f"step-level "
                f"pairs): eval pass@1 {before['pass_rate']:.1%} → {after['pass_rate']:.1%} on {after['n']} held-out "
                f"queries"
            )
        )
        for change in rnd.metrics.get("changes", []):
            self.stdout.write(f"  {format_change(change)}")

    def _pairs_waiting(self, project: Project) -> None:
        pairs = PreferencePair.objects.filter(project=project, status=PreferencePair.Status.PENDING)
        kinds = pairs.values_list("deficiency").annotate(n=Count("id")).order_by("-n")
        self.stdout.write(
            f"{pairs.count()} pairs wait for review (rejected branch: "
            + ", ".join(f"{d or 'none'} {n}" for d, n in kinds)
            + ")"
        )

    def _serve(self, host: str, port: int) -> None:
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        worker = subprocess.Popen(
            [
                python,
                "-m",
                "celery",
                "-A",
                "itool_web",
                "worker",
                "-Q",
                "cpu,gpu",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
            ],
            cwd=settings.BASE_DIR,
            start_new_session=True,
        )
        server = subprocess.Popen(
            [python, manage, "runserver", "--noreload", f"{host}:{port}"], cwd=settings.BASE_DIR, start_new_session=True
        )
        self.stdout.write(f"Web server pid {server.pid}, Celery worker pid {worker.pid}. Ctrl-C stops both.")
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        try:
            while not stop and server.poll() is None and worker.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for proc in (server, worker):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in (server, worker):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
