"""`rebuild_review_stats [--project NAME] [--check]`: recompute the review dashboard's counts from the rows."""

from django.core.management.base import BaseCommand, CommandError

from apps.curation.stats import review_stats_differences, review_stats_rebuild
from apps.projects.commands import project_or_error
from apps.projects.models import Project

SHOWN = 20  # differences printed per project


class Command(BaseCommand):
    help = (
        "Recompute the counts behind the review dashboard (pairs by round, deficiency and status; changes per "
        "person; agreement cells) from the pairs, events and decisions, and say which were wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", help="Project name (default: every project).")
        parser.add_argument(
            "--check", action="store_true", help="Only compare the stored counts with the rows; exit 1 if any differ."
        )

    def handle(self, *args, **opts):
        projects = Project.objects.order_by("name")
        if opts["project"]:
            projects = projects.filter(pk=project_or_error(opts["project"]).pk)
        names = dict(projects.values_list("pk", "name"))
        if opts["check"]:
            found = {pk: review_stats_differences(project_id=pk) for pk in names}
        else:
            found = review_stats_rebuild(project_ids=list(names) if opts["project"] else None)
        wrong = 0
        for pk, differences in found.items():
            wrong += bool(differences)
            if not differences:
                self.stdout.write(f"{names[pk]}: counts match the rows")
                continue
            verb = "differ from" if opts["check"] else "were rebuilt from"
            self.stdout.write(f"{names[pk]}: {len(differences)} counts {verb} the rows (stored ≠ rows):")
            for line in differences[:SHOWN]:
                self.stdout.write(f"  {line}")
            if len(differences) > SHOWN:
                self.stdout.write(f"  … and {len(differences) - SHOWN} more")
        if opts["check"] and wrong:
            raise CommandError(f"{wrong} project(s) have counts that differ from their rows: run rebuild_review_stats")
