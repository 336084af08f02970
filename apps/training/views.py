"""Round pages: the project's rounds compared (eval charts), one round (stage progress, the review gate, the
loss curve, before/after figures with paired bootstrap intervals, the failures browser of its eval answers), and
the admin actions on it — new, launch, cancel, resume."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.projects.permissions import ADMINS, MEMBERS, project_view

from . import pipeline
from .charts import line_chart
from .forms import RoundForm
from .lifecycle import FINAL, LaunchRefused, round_cancel, round_gate, round_launch, round_resume, rounds_reap
from .models import EvalRun, TrainingRound
from .selectors import eval_result_list
from .services import InvalidTransition, round_create

S = TrainingRound.State


def _round(project, number: int) -> TrainingRound:
    return get_object_or_404(
        TrainingRound.objects.select_related("policy_in", "policy_out", "snapshot"), project=project, number=number
    )


def round_status(rnd: TrainingRound) -> dict:
    """What the round page polls, and what the API and CLI report: state, stage and its figures."""
    progress = {k: v for k, v in rnd.progress.items() if k != "losses"}
    return {
        "id": rnd.pk,
        "number": rnd.number,
        "state": rnd.state,
        "algorithm": rnd.algorithm,
        "stage": progress.get("stage"),
        "progress": progress,
        "error": rnd.error,
        "reason": progress.get("reason"),
        "finished": rnd.state in FINAL,
        "updated_at": rnd.updated_at.isoformat(),
        "policy_in": rnd.policy_in_id,
        "policy_out": rnd.policy_out_id,
        "snapshot": rnd.snapshot_id,
        "pass_rate": (rnd.metrics.get("eval") or {}).get("pass_rate"),
        "pass_rate_before": (rnd.metrics.get("before") or {}).get("pass_rate"),
    }


def eval_history(project) -> tuple[list[dict], list[str]]:
    """One row per round with a finished evaluation (the round's output, plus the policy it started from
    for round 1's baseline), and the query kinds seen."""
    rows, kinds = [], set()
    for rnd in TrainingRound.objects.filter(project=project, state=S.DONE).order_by("number"):
        after = rnd.metrics.get("eval") or {}
        if not after:
            continue
        before = rnd.metrics.get("before") or {}
        kinds.update(after.get("by_kind", {}))
        rows.append(
            {
                "round": rnd,
                "after": after,
                "before": before,
                "change": _pct(rnd.metrics.get("pass_rate_change"), sign=True) if before else "",
            }
        )
    return rows, sorted(kinds)


def pass_rate_chart(rows: list[dict], kinds: list[str]):
    overall, by_kind = [], {k: [] for k in kinds}
    for row in rows:
        number = row["round"].number
        if row["before"] and not overall:  # the first round's input policy, drawn as the step before it
            overall.append((number - 1, row["before"]["pass_rate"]))
        overall.append((number, row["after"]["pass_rate"]))
        for kind in kinds:
            figures = row["after"].get("by_kind", {}).get(kind)
            if figures:
                by_kind[kind].append((number, figures["pass_rate"]))
    return line_chart(
        {"all": overall, **by_kind},
        title="Eval pass@1 after each round",
        x_label="round",
        y_label="pass@1",
        percent=True,
        y_range=(0, 1),
        width=760,
        element_id="pass-rate-chart",
    )


def solve_f1_chart(rows: list[dict]):
    """Solve-F1 (queries with executable tools) before the first round and after each; None when no eval has it."""
    points = []
    for row in rows:
        if row["before"] and row["before"].get("solve_f1") is not None and not points:
            points.append((row["round"].number - 1, row["before"]["solve_f1"]))
        if row["after"].get("solve_f1") is not None:
            points.append((row["round"].number, row["after"]["solve_f1"]))
    if not points:
        return None
    return line_chart(
        {"Solve-F1": points},
        title="Eval Solve-F1 after each round",
        x_label="round",
        y_label="Solve-F1",
        y_range=(0, 1),
        width=760,
        element_id="solve-f1-chart",
    )


@require_http_methods(["GET", "POST"])
@project_view(*MEMBERS)
def round_list(request, project):
    rounds_reap()
    is_admin = request.project_role in ADMINS
    form = RoundForm(project=project) if is_admin else None
    if request.method == "POST":
        if not is_admin:
            raise PermissionDenied("Creating a round needs the admin role.")
        form = RoundForm(request.POST, project=project)
        if form.is_valid():
            data = form.cleaned_data
            rnd = round_create(
                project=project,
                algorithm=data["algorithm"],
                policy=data["policy"],
                created_by=request.user,
                **data["parsed"],
            )
            rnd.gate, rnd.gate_value = data["gate"], data["gate_value"]
            rnd.save(update_fields=["gate", "gate_value", "updated_at"])
            messages.success(request, f"Round {rnd.number} created as a draft: launch it when ready.")
            return redirect("training:round_detail", project.pk, rnd.number)
    rounds = list(
        TrainingRound.objects.filter(project=project).select_related("policy_in", "policy_out").order_by("-number")
    )
    rows, kinds = eval_history(project)
    return render(
        request,
        "training/round_list.html",
        {
            "project": project,
            "rounds": rounds,
            "form": form,
            "is_admin": is_admin,
            "chart": pass_rate_chart(rows, kinds),
            "solve_chart": solve_f1_chart(rows),
            "history": rows,
            "kinds": kinds,
        },
        status=400 if form is not None and form.errors else 200,
    )


FAILURES_PAGE = 50


class BadFilter(ValueError):
    """A failures-browser parameter that is not one of the choices offered."""


def round_failures(rnd: TrainingRound, params) -> dict | None:
    """The failures browser: the round's eval answers after (or before) it, filtered by kind and deficiency,
    `FAILURES_PAGE` per page by keyset on id (`cursor`), each beside the other policy's answer to the same query.
    None when the round stored no per-query results. Raises BadFilter on a parameter outside the choices."""
    run_ids = {"after": rnd.metrics.get("eval_run"), "before": rnd.metrics.get("before_run")}
    runs = {r.pk: r for r in EvalRun.objects.filter(project=rnd.project, pk__in=[i for i in run_ids.values() if i])}
    if run_ids["after"] not in runs:
        return None
    side = params.get("side") or "after"
    if side not in ("after", "before") or run_ids[side] not in runs:
        raise BadFilter(f"side must be after or before, got {side!r}")
    figures = [rnd.metrics.get("eval") or {}, rnd.metrics.get("before") or {}]
    kinds = sorted({k for f in figures for k in f.get("by_kind", {})})
    deficiencies = sorted({d for f in figures for d in f.get("deficiencies", {})})
    kind = params.get("kind") or ""
    if kind and kind not in kinds:
        raise BadFilter(f"kind must be one of {', '.join(kinds)}; got {kind!r}")
    deficiency = params.get("deficiency") or ""  # "" = every failure, "none" = the right answers, "all" = all
    if deficiency not in ("", "none", "all", *deficiencies):
        raise BadFilter(f"deficiency must be one of {', '.join(['none', 'all', *deficiencies])}; got {deficiency!r}")
    try:
        cursor = int(params.get("cursor") or 0)
    except ValueError:
        raise BadFilter(f"cursor must be a whole number, got {params.get('cursor')!r}") from None
    rows = eval_result_list(
        eval_run=runs[run_ids[side]],
        kind=kind or None,
        deficiency=None if deficiency in ("", "all") else deficiency,
        failed_only=deficiency == "",
    )
    matching = rows.count()
    page = list(rows.filter(id__gt=cursor).select_related("query")[: FAILURES_PAGE + 1])
    more = len(page) > FAILURES_PAGE
    page = page[:FAILURES_PAGE]
    other_side = "before" if side == "after" else "after"
    others = {}
    if run_ids[other_side] in runs:
        others = {
            r.query_id: r
            for r in eval_result_list(eval_run=runs[run_ids[other_side]]).filter(
                query_id__in=[r.query_id for r in page]
            )
        }
    return {
        "side": side,
        "other_side": other_side,
        "has_before": run_ids["before"] in runs,
        "kind": kind,
        "deficiency": deficiency,
        "kinds": kinds,
        "deficiencies": deficiencies,
        "matching": matching,
        "cursor": cursor,
        "next_cursor": page[-1].pk if more else None,
        "rows": [{"result": r, "other": others.get(r.query_id)} for r in page],
    }


def change_rows(rnd: TrainingRound) -> list[dict]:
    """The round's before → after figures with their intervals, as the page shows them."""
    return [
        {
            **c,
            "before_pct": f"{c['before']:.1%}",
            "after_pct": f"{c['after']:.1%}",
            "diff_points": f"{c['diff'] * 100:+.1f}",
            "low_points": f"{c['low'] * 100:+.1f}",
            "high_points": f"{c['high'] * 100:+.1f}",
            "confidence_pct": f"{c['confidence']:.0%}",
            "lower_is_better": c["key"] == "over_refusal",
        }
        for c in rnd.metrics.get("changes", [])
    ]


@project_view(*MEMBERS)
def round_detail(request, project, number: int):
    rounds_reap()  # a round whose worker died shows as failed (with the reason), resumable, not as running forever
    rnd = _round(project, number)
    is_admin = request.project_role in ADMINS
    gate = round_gate(rnd) if rnd.state in (S.REVIEWING, S.PAIRING, S.SEARCHING) else None
    losses = rnd.progress.get("losses", [])
    after, before = rnd.metrics.get("eval") or {}, rnd.metrics.get("before") or {}
    kinds = sorted(set(after.get("by_kind", {})) | set(before.get("by_kind", {})))
    deficiencies = sorted(
        set(after.get("deficiencies", {})) | set(before.get("deficiencies", {})),
        key=lambda d: -(after.get("deficiencies", {}).get(d, 0)),
    )
    failures_error = ""
    try:
        failures = round_failures(rnd, request.GET)
    except BadFilter as exc:
        failures, failures_error = None, str(exc)
    return render(
        request,
        "training/round_detail.html",
        {
            "project": project,
            "round": rnd,
            "is_admin": is_admin,
            "gate": gate,
            "status": round_status(rnd),
            "loss_chart": line_chart(
                {"loss": losses}, title="Training loss", x_label="step", y_label="loss", element_id="loss-chart"
            )
            if losses
            else None,
            "after": after,
            "before": before,
            "kinds": kinds,
            "deficiencies": deficiencies,
            "summary": {
                "after": _pct(after.get("pass_rate")),
                "before": _pct(before.get("pass_rate")),
                "change": _pct(rnd.metrics.get("pass_rate_change"), sign=True),
                "bfcl_after": _pct(after.get("pass_rate_bfcl")),
                "bfcl_before": _pct(before.get("pass_rate_bfcl")),
                "refusal_after": _pct(after.get("over_refusal")),
                "refusal_before": _pct(before.get("over_refusal")),
            },
            "can_launch": is_admin and rnd.state in (S.DRAFT, S.REVIEWING),
            "can_cancel": is_admin and rnd.state not in FINAL,
            "can_resume": is_admin and rnd.state == S.FAILED and rnd.progress.get("failed_stage"),
            "eval_runs": EvalRun.objects.filter(round=rnd).select_related("checkpoint").order_by("created_at"),
            "skips_review": not pipeline.reviews(rnd.algorithm),
            "stage_path": pipeline.stage_path(
                rnd.algorithm, rnd.state, rnd.progress.get("failed_stage") or rnd.progress.get("stage")
            ),
            "settings": [
                (label, json.dumps(value, sort_keys=True) if value else "defaults")
                for label, value in (
                    ("Selection", rnd.selection),
                    ("Search", rnd.search_config),
                    ("Training and more", rnd.hyperparameters),
                )
            ],
            "changes": change_rows(rnd),
            "failures": failures,
            "failures_error": failures_error,
        },
        status=400 if failures_error else 200,
    )


def _pct(value, sign: bool = False) -> str:
    if value is None:
        return ""
    return f"{value * 100:+.1f} points" if sign else f"{value:.1%}"


@project_view(*MEMBERS)
def round_progress_json(request, project, number: int):
    return JsonResponse(round_status(_round(project, number)))


@require_POST
@project_view(*ADMINS)
def round_action(request, project, number: int, action: str):
    rnd = _round(project, number)
    run = {"launch": round_launch, "cancel": round_cancel, "resume": round_resume}[action]
    try:
        rnd = run(round_id=rnd.pk, user=request.user)
    except (LaunchRefused, InvalidTransition) as refused:
        if "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"error": str(refused)}, status=409)
        messages.error(request, f"{action.capitalize()} refused: {refused}")
        return redirect("training:round_detail", project.pk, number)
    done = {
        "launch": f"Round {rnd.number} launched: it is {rnd.state}.",
        "cancel": f"Round {rnd.number} cancelled; its data is kept.",
        "resume": f"Round {rnd.number} resumed at its {rnd.progress.get('stage')} stage.",
    }[action]
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(round_status(rnd))
    messages.success(request, done)
    return redirect(reverse("training:round_detail", args=[project.pk, number]))
