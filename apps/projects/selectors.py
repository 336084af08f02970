"""Reads for the project pages: which projects a user sees."""

from __future__ import annotations

from django.db.models import Count, OuterRef, QuerySet, Subquery

from apps.curation.models import PreferencePair

from .models import Membership, Project


def projects_for_user(*, user) -> QuerySet[Project]:
    """Projects the user belongs to (all of them for a superuser), each with the user's role and counts."""
    projects = Project.objects.all() if user.is_superuser else Project.objects.filter(memberships__user=user)
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    pending = (
        PreferencePair.objects.filter(project=OuterRef("pk"), status=PreferencePair.Status.PENDING)
        .values("project")
        .annotate(n=Count("id"))
        .values("n")
    )
    return projects.annotate(member_role=Subquery(role), pending_pairs=Subquery(pending)).order_by("name")
