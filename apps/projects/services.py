"""Writes to projects: creating them and giving people roles in them."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import Membership, Project

DEMO_USERS = (
    ("admin", Membership.Role.ADMIN),
    ("annotator", Membership.Role.ANNOTATOR),
    ("reviewer", Membership.Role.REVIEWER),
)


def membership_set(*, project: Project, user, role: str) -> Membership:
    """Give `user` exactly one role in `project` (replacing any earlier one)."""
    if role not in Membership.Role.values:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(Membership.Role.values)}")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def demo_users_create(*, project: Project) -> dict[str, str]:
    """The demo's admin, annotator and reviewer, each with a fresh random password: {username: password}.

    The admin is also a Django superuser, so the whole admin site is open to it.
    """
    User = get_user_model()
    passwords = {}
    for username, role in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=username)
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.is_staff = role == Membership.Role.ADMIN
        user.is_superuser = role == Membership.Role.ADMIN
        user.save()
        membership_set(project=project, user=user, role=role)
        passwords[username] = password
    return passwords


class StaleGuidelines(Exception):
    """The project changed since the editor read it; `current` is the project as it is now."""

    def __init__(self, project: Project, expected: str):
        super().__init__(f"{project.name} changed since you read it ({project.updated_at.isoformat()}, not {expected})")
        self.current, self.expected = project, expected


def project_guidelines_version(project: Project) -> str:
    """What a guidelines editor carries back to prove it read the latest text (the project's last change)."""
    return project.updated_at.isoformat()


def project_guidelines_set(*, project_id: int, guidelines: str, read_version: str) -> Project:
    """Replace the guidelines, unless the project changed since `read_version` (then StaleGuidelines and
    nothing is written)."""
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project_id)
        if project_guidelines_version(project) != read_version:
            raise StaleGuidelines(project, read_version)
        project.guidelines = guidelines
        project.save(update_fields=["guidelines", "updated_at"])
        return project
