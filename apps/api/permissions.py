"""Who sees what over REST: the pages' rules (`apps.projects.permissions`) applied to querysets.

Rows of a project the user is not a member of are left out of every queryset, so they answer 404 like the
pages; an action needing a higher role answers 403 (`project_with_role` raises Django's Http404 and
PermissionDenied, which DRF turns into those answers).
"""

from __future__ import annotations

from django.db.models import QuerySet

from apps.projects.models import Membership


def visible(queryset: QuerySet, user, project_field: str = "project") -> QuerySet:
    """The rows of `queryset` in projects the user is a member of (all of them for a superuser)."""
    if not getattr(user, "is_authenticated", False):  # e.g. the schema generator's fake request
        return queryset.none()
    if user.is_superuser:
        return queryset
    member_of = Membership.objects.filter(user=user).values("project_id")
    return queryset.filter(**{f"{project_field}__in": member_of})


class ProjectScopedMixin:
    """A view over rows that belong to projects: lists and lookups see only the user's projects.
    Subclasses set `queryset` (or override `base_queryset`) and, when the path to the project is not
    `project`, `project_field`."""

    project_field = "project"

    def base_queryset(self) -> QuerySet:
        return self.queryset.all()

    def get_queryset(self) -> QuerySet:
        return visible(self.base_queryset(), self.request.user, self.project_field)
