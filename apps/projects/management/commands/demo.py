"""`demo`: set up the demo project and serve it, with a worker, on this machine."""
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from django.db.models import Count

from apps.curation.models import PreferencePair
from apps.projects.models import Project
from apps.projects.services import demo_users_create
from apps.training.models import Checkpoint, TrainingRound
from apps.training.services import round_create


class Command(BaseCommand):
    help = "Migrate, create the demo project, users and environment, then run the web server and a worker."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="demo")
        parser.add_argument("--queries", type=int, default=4000, help="Generated queries in the demo environment.")
        parser.add_argument("--warmup-epochs", type=float, default=2.0, help="Passes of the warm-up SFT per stage.")
        parser.add_argument("--search-queries", type=int, default=48, help="Queries the demo round searches.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="Set up only; do not start the processes.")

    def handle(self, *args, **opts):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        project, _ = Project.objects.get_or_create(
            name=opts["project"],
            defaults={"description": "Generated tool-use environment (FTRL's five stages) for the iTool loop."},
        )
        call_command("generate_environment", project=project.name, seed=opts["seed"], queries=opts["queries"])
        self._loop(project, opts)
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
            f"Admin site: {url}/admin/ as admin — Catalog (queries, tools, import jobs with an upload form), "
            f"Training (round 0 with its eval, round 1 reviewing), Search (trees, nodes), Curation (pairs).\n"
        )
        if opts["no_serve"]:
            return
        self._serve(opts["host"], opts["port"])

    def _loop(self, project: Project, opts: dict) -> None:
        """The tiny policy, its warm-up (round 0), and round 1 searched and paired: pairs wait for review.
        Each part is skipped when a previous run already did it."""
        if not Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.TINY).exists():
            call_command("build_tiny_model", project=project.name, output=str(settings.CHECKPOINT_DIR / project.name
                                                                                 / "tiny"), size="small")
        if not TrainingRound.objects.filter(project=project, number=0, state=TrainingRound.State.DONE).exists():
            call_command("warmup", project=project.name, epochs=opts["warmup_epochs"])
        if not TrainingRound.objects.filter(project=project, number__gte=1).exists():
            round_create(project=project, selection={"method": "perplexity", "ratio": 0.3,
                                                     "max_queries": opts["search_queries"]})
        call_command("run_round", project=project.name, until="pair")
        pairs = PreferencePair.objects.filter(project=project, status=PreferencePair.Status.PENDING)
        kinds = pairs.values_list("deficiency").annotate(n=Count("id")).order_by("-n")
        self.stdout.write(f"{pairs.count()} pairs wait for review (rejected branch: "
                          + ", ".join(f"{d or 'none'} {n}" for d, n in kinds) + ")")

    def _serve(self, host: str, port: int) -> None:
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        worker = subprocess.Popen(
            [python, "-m", "celery", "-A", "itool_web", "worker", "-Q", "cpu,gpu", "--concurrency", "1",
             "--loglevel", "INFO"],
            cwd=settings.BASE_DIR, start_new_session=True,
        )
        server = subprocess.Popen([python, manage, "runserver", "--noreload", f"{host}:{port}"],
                                  cwd=settings.BASE_DIR, start_new_session=True)
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
