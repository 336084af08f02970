"""What the management commands share: the project a `--project NAME` option names."""

from django.core.management.base import CommandError

from .models import Project

KNOWN_SHOWN = 20  # project names a "no project named" error lists


def project_or_error(name: str) -> Project:
    """The project called `name`; a CommandError listing the projects there are when none is."""
    project = Project.objects.filter(name=name).first()
    if project is None:
        names = list(Project.objects.order_by("name").values_list("name", flat=True)[: KNOWN_SHOWN + 1])
        known = ", ".join(map(repr, names[:KNOWN_SHOWN])) + (", …" if len(names) > KNOWN_SHOWN else "")
        raise CommandError(f"no project named {name!r} (projects: {known or 'none yet'})")
    return project
