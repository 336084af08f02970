"""Project pages: the list of your projects, a project's review dashboard, and its guidelines."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.curation import selectors as curation_selectors
from apps.curation.agreement import project_agreement

from .forms import GuidelinesForm
from .guidelines import guidelines_html
from .permissions import MEMBERS, can_adjudicate, can_edit_guidelines, project_view
from .selectors import projects_for_user
from .services import StaleGuidelines, project_guidelines_set, project_guidelines_version


@login_required
def project_list(request):
    return render(request, "projects/project_list.html", {"projects": projects_for_user(user=request.user)})


@project_view(*MEMBERS)
def project_dashboard(request, project):
    """Pairs by status and deficiency, review progress, who reviewed what, agreement, rounds."""
    role = request.project_role
    awaiting = curation_selectors.pairs_awaiting_adjudication_count(project=project) if can_adjudicate(role) else None
    return render(
        request,
        "projects/dashboard.html",
        {
            "project": project,
            "role": role,
            "progress": curation_selectors.project_review_progress(project=project),
            "reviewers": curation_selectors.project_reviewers(project=project),
            "rounds": curation_selectors.project_rounds(project=project),
            "agreement": project_agreement(project),
            "awaiting_adjudication": awaiting,
        },
    )


@require_http_methods(["GET", "POST"])
@project_view(*MEMBERS)
def project_guidelines(request, project):
    """Everyone reads the guidelines; admins edit them (at the version they read: no lost update)."""
    can_edit = can_edit_guidelines(request.project_role)
    context = {
        "project": project,
        "can_edit": can_edit,
        "text": project.guidelines,
        "read_version": project_guidelines_version(project),
    }
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Editing the guidelines needs the admin role.")
        form = GuidelinesForm(request.POST)
        if not form.is_valid():
            return render(request, "error.html", {"status": 400, "message": form.error_message()}, status=400)
        text = form.cleaned_data["guidelines"]
        try:
            project_guidelines_set(
                project_id=project.pk, guidelines=text, read_version=form.cleaned_data["read_version"]
            )
        except StaleGuidelines as stale:
            context.update(
                project=stale.current, text=text, conflict=True, read_version=project_guidelines_version(stale.current)
            )
            context["guidelines_html"] = guidelines_html(stale.current.guidelines)
            return render(request, "projects/guidelines.html", context, status=409)
        messages.success(request, "Guidelines saved.")
        return redirect(reverse("projects:guidelines", args=[project.pk]))
    context["guidelines_html"] = guidelines_html(project.guidelines)
    return render(request, "projects/guidelines.html", context)
