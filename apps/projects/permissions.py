"""Who may do what in a project: membership and role checks for every page and action, in one place.

A user who is not a member of a project gets 404 for everything in it (the project is invisible, not
hidden); a member whose role is not enough gets 403. Superusers count as admins of every project.

Roles, each including the one before:
- annotator: view the project, review pending pairs (and pairs they hold or last reviewed themselves);
- reviewer: adjudicate — act on flagged and edited pairs, overrule anyone's decision;
- admin: edit the guidelines, launch rounds.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.utils import timezone

from .models import Membership, Project

Role = Membership.Role

MEMBERS = (Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN)
ADJUDICATORS = (Role.REVIEWER, Role.ADMIN)
ADMINS = (Role.ADMIN,)


def membership_for(user, project: Project) -> Membership | None:
    """The user's membership of the project; an unsaved admin one for a superuser; None otherwise."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return Membership(project=project, user=user, role=Role.ADMIN)
    return Membership.objects.filter(project=project, user=user).first()


def _check(role: str | None, roles: tuple[str, ...], project: Project) -> str:
    if role is None:
        raise Http404("No such project.")
    if roles and role not in roles:
        raise PermissionDenied(f"This needs the {' or '.join(roles)} role in {project.name}; yours is {role}.")
    return role


def require_role(user, project: Project, *roles: str) -> str:
    """The user's role in the project; Http404 for a non-member, PermissionDenied when the role is not
    among `roles` (no roles given: any member will do)."""
    membership = membership_for(user, project)
    return _check(membership.role if membership else None, roles, project)


def project_with_role(user, project_id: int, *roles: str) -> tuple[Project, str]:
    """Load the project and the user's role in it in one query, then check as `require_role` does."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such project.")
    queryset = Project.objects.filter(pk=project_id)
    if not user.is_superuser:
        role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        queryset = queryset.annotate(member_role=Subquery(role))
    project = queryset.first()
    if project is None:
        raise Http404("No such project.")
    role = Role.ADMIN if user.is_superuser else project.member_role
    return project, _check(role, roles, project)


def project_view(*roles: str):
    """Decorate a view taking `project_id`: log-in required, then the project is loaded and the role
    checked; the view receives `(request, project, ...)` and `request.project_role` is set."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, project_id: int, *args, **kwargs):
            project, request.project_role = project_with_role(request.user, project_id, *roles)
            return view(request, project, *args, **kwargs)

        return wrapper

    return decorator


def can_adjudicate(role: str) -> bool:
    return role in ADJUDICATORS


def can_edit_guidelines(role: str) -> bool:
    return role in ADMINS


def actable_pair_ids(*, user, role: str, pairs) -> set[int]:
    """Which of these pairs the member may change. Reviewers and admins: any. Annotators: pending pairs,
    pairs they last reviewed themselves, and pairs leased to them (with overlap k > 1 a second annotator
    still holds a pair the first one has decided). One query at most."""
    if role in ADJUDICATORS:
        return {pair.pk for pair in pairs}
    allowed = {pair.pk for pair in pairs if pair.status == "pending" or pair.reviewed_by_id == user.pk}
    others = [pair.pk for pair in pairs if pair.pk not in allowed]
    if others:
        from apps.curation.models import PairAssignment  # curation depends on projects, not the reverse

        allowed.update(
            PairAssignment.objects.filter(
                pair_id__in=others, user=user, decision="", leased_until__gt=timezone.now()
            ).values_list("pair_id", flat=True)
        )
    return allowed


def can_act_on_pair(*, user, role: str, pair) -> bool:
    return pair.pk in actable_pair_ids(user=user, role=role, pairs=[pair])


def require_pair_action(*, user, role: str, pair) -> None:
    """PermissionDenied unless the member may change the pair (see `actable_pair_ids`)."""
    if not can_act_on_pair(user=user, role=role, pair=pair):
        raise PermissionDenied(
            f"Pair #{pair.pk} is {pair.status}: changing a pair someone else reviewed needs the reviewer role."
        )
