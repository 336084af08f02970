"""Generate a tool-use environment (tools with implementations, and queries) and store it in a project."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.records import RecordError
from apps.catalog.services import records_write
from apps.projects.models import Project

DEFAULTS = EnvironmentConfig()


class Command(BaseCommand):
    help = "Generate tools and queries (FTRL's five stages, seeded) and store them; re-running changes nothing."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project name (created if missing).")
        parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
        parser.add_argument("--queries", type=int, default=DEFAULTS.queries, help="How many queries.")
        parser.add_argument(
            "--eval-fraction", type=float, default=DEFAULTS.eval_fraction, help="Share held out as split 'eval'."
        )

    def handle(self, *args, project, seed, queries, eval_fraction, **options):
        try:
            config = EnvironmentConfig(seed=seed, queries=queries, eval_fraction=eval_fraction)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        env = generate_environment(config)
        records = tqdm(env.queries, desc="writing", unit="query", file=self.stderr, disable=None)
        try:
            with transaction.atomic():  # a failed write leaves no new project behind either
                project_row, created = Project.objects.get_or_create(name=project)
                counts = records_write(project=project_row, records=records, source="generated", split="train")
        except RecordError as exc:
            # the usual cause: the same seed with another --queries gives other queries under the same ids
            raise CommandError(f"nothing written: {exc} (use another seed or project)") from None
        if created:
            self.stdout.write(f"Created project {project!r}.")
        summary = env.counts()
        self.stdout.write(f"Generated {len(env.queries)} queries over {len(env.tools)} tools (seed {seed}).")
        self.stdout.write(f"Queries: {counts.created} new, {counts.unchanged} already present.")
        # records_write stores the tools the queries offer, so a tiny run stores only some of them
        offered = len({tool.name for query in env.queries for tool in query.tools})
        self.stdout.write(f"Tools: {counts.tools_created} new, {offered - counts.tools_created} already present.")
        for key, values in summary.items():
            self.stdout.write(f"By {key}: " + ", ".join(f"{name} {n}" for name, n in sorted(values.items())))
