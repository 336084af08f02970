"""`import_data PATH --format toolace|bfcl|openai|ftrl --project NAME [--split train|eval]`."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from apps.catalog.importers import FORMATS
from apps.catalog.records import RecordError
from apps.catalog.services import import_file
from apps.projects.models import Project


class Command(BaseCommand):
    help = "Import tools and queries from a file, all or nothing; re-importing the same file changes nothing."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--project", required=True, help="Project name (created if missing).")
        parser.add_argument("--split", default="train", choices=["train", "eval"])
        parser.add_argument("--answers", help="BFCL possible-answer file (default: possible_answer/<same name>).")

    def handle(self, *args, **opts):
        bar = tqdm(total=0, unit="B", unit_scale=True, desc="import", disable=opts["verbosity"] == 0, file=self.stderr)

        def progress(p: dict) -> None:
            bar.total, bar.n = p["total"], p["done"]
            bar.refresh()

        try:
            with transaction.atomic():  # a failed import leaves no new project behind either
                project, created = Project.objects.get_or_create(name=opts["project"])
                counts = import_file(
                    project=project,
                    path=opts["path"],
                    fmt=opts["format"],
                    split=opts["split"],
                    answers_path=opts["answers"],
                    progress=progress,
                )
        except RecordError as exc:
            raise CommandError(f"{opts['path']}: {exc} — nothing was imported") from None
        finally:
            bar.close()
        if created:
            self.stdout.write(f"Created project {project.name!r}.")
        self.stdout.write(counts.summary())
