"""Review pages: the bulk list, one pair in focus, its history, and the review actions on pairs.

Actions answer JSON to fetch() callers (`Accept: application/json`) and redirect plain form posts. A write
carrying a stale version gets 409 with what changed and a form to re-apply it.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from apps.projects.guidelines import guidelines_html
from apps.projects.permissions import MEMBERS, actable_pair_ids, can_adjudicate, project_view, require_pair_action

from . import selectors
from .actions import ACTIONS, NAVIGATION_KEYS
from .display import branch, edit_diff, pair_branches
from .forms import PairFilterForm, ReviewInputForm, parse_bulk_selection
from .paging import keyset_page
from .queues import ADJUDICATE, ReviewQueue
from .services import StaleVersion, pair_bulk_review

PAGE_SIZE = 50


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def bad_request(request, message: str) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"error": message}, status=400)
    return render(request, "error.html", {"status": 400, "message": message}, status=400)


def focus_url(project, pair_id: int, queue: ReviewQueue) -> str:
    return reverse("curation:pair_focus", args=[project.pk, pair_id]) + queue.query_string


def next_url(project, queue: ReviewQueue) -> str:
    return reverse("curation:pair_next", args=[project.pk]) + queue.query_string


def pair_json(pair) -> dict:
    return {
        "id": pair.pk,
        "status": pair.status,
        "version": pair.version,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "gap": pair.gap,
        "flag_note": pair.flag_note,
    }


def _queue_for(request, params) -> ReviewQueue:
    queue = ReviewQueue.from_params(params)
    if queue.kind == ADJUDICATE and not can_adjudicate(request.project_role):
        raise PermissionDenied("The adjudication queue is for reviewers.")
    return queue


@require_http_methods(["GET", "POST"])
@project_view(*MEMBERS)
def pair_next(request, project):
    """Lease the next pair of the queue to the user and open it (or say the queue is empty)."""
    queue = _queue_for(request, request.GET)
    pair_id = queue.take_next(project=project, user=request.user)
    if pair_id is None:
        return render(request, "curation/queue_empty.html", {"project": project, "queue": queue})
    return redirect(focus_url(project, pair_id, queue))


@project_view(*MEMBERS)
def pair_focus(request, project, pair_id: int):
    pair = get_object_or_404(selectors.pairs_for_focus(project=project), pk=pair_id)
    queue = _queue_for(request, request.GET)
    user, role = request.user, request.project_role
    chosen, rejected = pair_branches(pair)
    next_id = queue.peek_next(project=project, user=user, current_pair_id=pair.pk)
    previous_id = selectors.pair_previous_for_user(project=project, user=user, current_pair_id=pair.pk)
    return render(
        request,
        "curation/pair_focus.html",
        {
            "project": project,
            "pair": pair,
            "query": pair.query,
            "tools": pair.query.ordered_tools(),
            "chosen": chosen,
            "rejected": rejected,
            "edit_diff": edit_diff(pair.original_chosen, pair.chosen) if pair.original_chosen else None,
            "events": selectors.pair_events(pair=pair, limit=5),
            "last_change": selectors.user_last_change(project=project, user=user),
            "can_act": pair.pk in actable_pair_ids(user=user, role=role, pairs=[pair]),
            "role": role,
            "queue": queue,
            "actions": ACTIONS,
            "navigation_keys": NAVIGATION_KEYS,
            "next_url": focus_url(project, next_id, queue) if next_id else next_url(project, queue),
            "preload_url": focus_url(project, next_id, queue) if next_id else "",
            "previous_url": focus_url(project, previous_id, queue) if previous_id else "",
            "guidelines_html": guidelines_html(project.guidelines),
        },
    )


@require_POST
@project_view(*MEMBERS)
def pair_action(request, project, pair_id: int, action: str):
    """approve / reject / edit / swap / flag / skip / undo, at the version the caller read."""
    review_action = ACTIONS[action]
    pair = get_object_or_404(
        selectors.pairs_in_project(project=project).only("pk", "status", "reviewed_by", "version"), pk=pair_id
    )
    form = ReviewInputForm.for_action(request.POST, review_action)
    if not form.is_valid():
        return bad_request(request, form.error_message())
    version = form.cleaned_data.get("version")
    if version is not None and version > pair.version:
        return bad_request(request, f"version: pair #{pair.pk} has no version {version} yet")
    if review_action.decides and (version is None or version == pair.version):
        # A write at an older version is refused by the service (409, showing the change), whatever the role;
        # versions only grow, so such a write can never land unchecked.
        require_pair_action(user=request.user, role=request.project_role, pair=pair)
    queue = _queue_for(request, request.POST)
    try:
        result = review_action.run(pair.pk, version, request.user, form.cleaned_data)
    except StaleVersion as stale:
        return conflict_response(request, project, review_action.name, stale, queue)
    except ValueError as error:
        return bad_request(request, str(error))
    if review_action.stays:
        target = focus_url(project, pair.pk, queue)
    else:
        next_id = queue.take_next(project=project, user=request.user, current_pair_id=pair.pk)
        target = focus_url(project, next_id, queue) if next_id else next_url(project, queue)
    if wants_json(request):
        return JsonResponse(
            {
                "ok": True,
                "action": review_action.name,
                "pair": pair_json(result) if result else None,
                "next_url": target,
                "stay": review_action.stays,
            }
        )
    messages.success(request, f"{review_action.label}: pair #{pair.pk} done.")
    return redirect(target)


def conflict_response(request, project, action: str, stale: StaleVersion, queue: ReviewQueue) -> HttpResponse:
    """409: the pair as it is now, the changes made since the caller's version, and a form to re-apply."""
    current = stale.current
    context = {
        "project": project,
        "pair": current,
        "action": ACTIONS[action],
        "expected": stale.expected,
        "events": selectors.pair_events(pair=current, after_version=stale.expected),
        "reapply": {name: request.POST[name] for name in ("chosen", "note") if name in request.POST},
        "queue": queue,
        "focus_url": focus_url(project, current.pk, queue),
    }
    if wants_json(request):
        return JsonResponse(
            {
                "error": "stale",
                "detail": str(stale),
                "expected": stale.expected,
                "current": pair_json(current),
                "events": [
                    {
                        "user": e.user.username if e.user else None,
                        "action": e.action,
                        "version": e.version,
                        "at": e.created_at.isoformat(),
                        "before": e.before,
                        "after": e.after,
                        "note": e.note,
                    }
                    for e in context["events"]
                ],
                "conflict_html": render_to_string("curation/_conflict.html", context, request=request),
            },
            status=409,
        )
    return render(request, "curation/conflict.html", context, status=409)


@require_POST
@project_view(*MEMBERS)
def pair_score(request, project, pair_id: int):
    """The checker's verdict on an edit of the chosen fragment, live while typing (nothing is saved)."""
    pair = get_object_or_404(selectors.pairs_for_focus(project=project), pk=pair_id)
    form = ReviewInputForm(request.POST, needs_version=False, text_fields=("chosen",))
    if not form.is_valid():
        return bad_request(request, form.error_message())
    chosen = form.cleaned_data["chosen"]
    verdict = selectors.pair_score_edit(pair=pair, chosen=chosen)
    edited = branch(side="edit", text=chosen, other=pair.chosen, prefix=pair.prefix, verdict=verdict)
    original, _ = edit_diff(pair.chosen, chosen)
    html = render_to_string("curation/_edit_preview.html", {"edited": edited, "original": original}, request=request)
    return JsonResponse({"verdict": verdict, "html": html})


@project_view(*MEMBERS)
def pair_history(request, project, pair_id: int):
    pair = get_object_or_404(selectors.pairs_in_project(project=project).select_related("query"), pk=pair_id)
    return render(
        request,
        "curation/pair_history.html",
        {
            "project": project,
            "pair": pair,
            "events": selectors.pair_events(pair=pair),
            "focus_url": focus_url(project, pair.pk, ReviewQueue()),
        },
    )


@project_view(*MEMBERS)
def pair_list(request, project):
    """The bulk view: filters, sorting, pages of 50 by keyset (`after`/`before` a row's sort key), the number
    of matches (exact, or "more than 1,000"), rows to select for a bulk approve or reject."""
    form = PairFilterForm(request.GET or None, **selectors.pair_filter_choices(project=project))
    filters = form.filters() if form.is_bound else selectors.PairFilters()
    matches = selectors.pair_list_for_review(project=project, filters=filters, user=request.user)
    after, before = request.GET.get("after", ""), request.GET.get("before", "")
    page = keyset_page(matches, order=selectors.SORTS[filters.sort], size=PAGE_SIZE, after=after, before=before)
    count, exact = selectors.pair_list_count(project=project, filters=filters, pairs=matches)
    actable = actable_pair_ids(user=request.user, role=request.project_role, pairs=page.rows)
    params = request.GET.copy()
    for name in ("page", "after", "before"):
        params.pop(name, None)
    return render(
        request,
        "curation/pair_list.html",
        {
            "project": project,
            "form": form,
            "page": page,
            "rows": [(pair, pair.pk in actable) for pair in page.rows],
            "count": count,
            "count_exact": exact,
            "paged": bool(after or before),
            "filter_query": params.urlencode(),
            "back": request.get_full_path(),
        },
    )


@require_POST
@project_view(*MEMBERS)
def pair_bulk(request, project):
    """Approve or reject the selected pairs: a confirmation page first, then the change (`confirm=yes`)."""
    try:
        action, selected = parse_bulk_selection(request.POST)
    except ValueError as error:
        return bad_request(request, str(error))
    pairs = selectors.pairs_by_ids(project=project, ids=list(selected))
    if len(pairs) != len(selected):
        raise Http404("No such pair in this project.")
    if any(selected[pair.pk] > pair.version for pair in pairs):
        return bad_request(request, "a selected pair has no such version yet")
    current = [pair for pair in pairs if selected[pair.pk] == pair.version]  # stale ones are left alone anyway
    actable = actable_pair_ids(user=request.user, role=request.project_role, pairs=current)
    forbidden = [f"#{pair.pk}" for pair in current if pair.pk not in actable]
    if forbidden:
        raise PermissionDenied(f"Changing pairs someone else reviewed needs the reviewer role: {', '.join(forbidden)}.")
    back = request.POST.get("back", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("curation:pair_list", args=[project.pk])
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "curation/bulk_confirm.html",
            {"project": project, "action": action, "pairs": pairs, "selected": selected, "back": back},
        )
    result = pair_bulk_review(pair_versions=selected, user=request.user, action=action)
    if wants_json(request):
        return JsonResponse(result)
    verb = "Approved" if action == "approve" else "Rejected"
    messages.success(request, f"{verb} {len(result['done'])} pair(s).")
    if result["stale"]:
        messages.warning(
            request,
            f"{len(result['stale'])} pair(s) had changed since you loaded them and were left "
            f"alone: {', '.join(f'#{i}' for i in result['stale'])}. Review them again.",
        )
    return redirect(back)
