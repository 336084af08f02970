"""The arms page of a round: the arms table and chart (every member), launching a comparison (admins), live progress."""

from __future__ import annotations

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.projects.permissions import ADMINS, MEMBERS, project_view
from apps.training.models import TrainingRound

from .charts import interval_chart
from .data import TRAINED_ARMS
from .models import ArmRun
from .selectors import arm_runs_for_round, arms_running, arms_table
from .services import MAX_SEEDS, ArmsRefused, arms_launch


def _round(project, number: int) -> TrainingRound:
    return get_object_or_404(
        TrainingRound.objects.select_related("policy_in", "policy_out", "snapshot"), project=project, number=number
    )


def arms_status(rnd: TrainingRound) -> dict:
    """What the page polls: each run's status and progress, and whether any is still to finish."""
    runs = [
        {"id": r.pk, "arm": r.arm, "seed": r.seed, "status": r.status, "progress": r.progress, "error": r.error}
        for r in arm_runs_for_round(round=rnd)
    ]
    return {"round": rnd.number, "running": any(r["status"] in ("pending", "running") for r in runs), "runs": runs}


def _cell(cell: dict) -> dict:
    interval = cell.get("interval")
    text = (
        f"{interval['diff'] * 100:+.1f} points [{interval['low'] * 100:+.1f}, {interval['high'] * 100:+.1f}]"
        if interval
        else ""
    )
    return {**cell, "interval_text": text}


@project_view(*MEMBERS)
def arms_page(request, project, number: int):
    rnd = _round(project, number)
    table = arms_table(round=rnd)
    series = {row["arm"]: {kind: cell.get("interval") for kind, cell in row["cells"].items()} for row in table["arms"]}
    rows = [
        {**row, "ordered": [_cell(row["cells"].get(kind) or {}) for kind in table["kinds"]]}
        for row in ([table["baseline"]] if table["baseline"] else []) + table["arms"]
        if row["seeds"]
    ]
    return render(
        request,
        "arms/arms.html",
        {
            "project": project,
            "round": rnd,
            "table": table,
            "rows": rows,
            "is_admin": request.project_role in ADMINS,
            "chart": interval_chart(
                table["kinds"],
                series,
                title="Change in strict pass@1 against the round's input (95% paired bootstrap interval)",
                y_label="points",
                element_id="arms-chart",
            ),
            "runs": arm_runs_for_round(round=rnd),
            "running": arms_running(round=rnd),
            "arm_names": TRAINED_ARMS,
            "labels": dict(ArmRun.Arm.choices),
            "max_seeds": MAX_SEEDS,
        },
    )


@project_view(*MEMBERS)
def arms_progress_json(request, project, number: int):
    return JsonResponse(arms_status(_round(project, number)))


@require_POST
@project_view(*ADMINS)
def arms_launch_view(request, project, number: int):
    rnd = _round(project, number)
    try:
        seeds = int(request.POST.get("seeds", "1"))
    except ValueError:
        seeds = request.POST.get("seeds")
    try:
        rows = arms_launch(round=rnd, arms=request.POST.getlist("arms") or None, seeds=seeds, user=request.user)
    except ArmsRefused as refused:
        messages.error(request, f"Arms not launched: {refused}")
    else:
        messages.success(
            request,
            f"{len(rows)} arm run(s) sent to the workers."
            if rows
            else "Every arm asked for has finished already: nothing to run.",
        )
    return redirect("arms:arms", project.pk, number)
