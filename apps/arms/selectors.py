"""Reads of arm runs: a round's runs, and its arms table — per arm and query kind, strict pass@1 as the mean over
seeds with a 95% paired bootstrap interval against the round's input policy on identical eval queries, plus
over-refusal and the deficiency histogram."""
from __future__ import annotations

from collections import Counter

from apps.catalog.models import Query
from apps.training.models import TrainingRound

from .data import INPUT, TRAINED_ARMS
from .models import ArmRun
from .outcomes import paired_interval, run_outcomes

ALL = "all"  # the row of every eval query together


def arm_runs_for_round(*, round: TrainingRound):
    return (ArmRun.objects.filter(round=round).select_related("checkpoint", "eval_run")
            .order_by("arm", "seed"))


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _eval(run: ArmRun) -> dict:
    return (run.eval_run.metrics if run.eval_run is not None else None) or run.metrics.get("eval") or {}


def arms_table(*, round: TrainingRound) -> dict:
    """{"kinds", "baseline": row | None, "arms": [row]} where a row is {"arm", "label", "seeds": done, "runs",
    "status", "cells": {kind: {"pass_rate", "n", "interval"}}, "over_refusal", "deficiencies"}; "all" is the
    first kind. Intervals are None without per-query outcomes (or for the baseline itself)."""
    runs = list(arm_runs_for_round(round=round))
    by_arm: dict[str, list[ArmRun]] = {}
    for run in runs:
        by_arm.setdefault(run.arm, []).append(run)
    baseline_run = next((r for r in by_arm.get(INPUT, []) if r.status == ArmRun.Status.DONE), None)
    before = run_outcomes(baseline_run.eval_run) if baseline_run and baseline_run.eval_run else None
    kind_of = dict(Query.objects.filter(pk__in=list(before)).values_list("id", "kind")) if before else {}
    kinds = sorted({k for run in runs if run.status == ArmRun.Status.DONE for k in _eval(run).get("by_kind", {})})
    labels = dict(ArmRun.Arm.choices)

    def row(arm: str, arm_runs: list[ArmRun]) -> dict:
        done = [r for r in arm_runs if r.status == ArmRun.Status.DONE]
        figures = [_eval(r) for r in done]
        cells = {ALL: {"pass_rate": _mean([f.get("pass_rate") for f in figures]),
                       "n": figures[0].get("n") if figures else None, "interval": None}}
        for kind in kinds:
            per_kind = [f.get("by_kind", {}).get(kind) for f in figures]
            per_kind = [p for p in per_kind if p]
            cells[kind] = {"pass_rate": _mean([p["pass_rate"] for p in per_kind]),
                           "n": per_kind[0]["n"] if per_kind else None, "interval": None}
        if before and arm != INPUT and done:
            outcomes = [run_outcomes(r.eval_run) for r in done if r.eval_run is not None]
            if outcomes and all(o is not None for o in outcomes):
                for kind in (ALL, *kinds):
                    ids = sorted(q for q in before if (kind == ALL or kind_of.get(q) == kind)
                                 and all(q in o for o in outcomes))
                    if ids:  # the seed-mean of each query's outcome against the input's, query by query
                        cells.setdefault(kind, {"pass_rate": None, "n": None})["interval"] = paired_interval(
                            [float(before[q]) for q in ids], [_mean([float(o[q]) for o in outcomes]) for q in ids])
        deficiencies: Counter = Counter()
        for f in figures:
            deficiencies.update(f.get("deficiencies", {}))
        statuses = Counter(r.status for r in arm_runs)
        return {"arm": arm, "label": labels.get(arm, arm), "seeds": len(done), "runs": arm_runs,
                "status": ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
                "cells": cells, "over_refusal": _mean([f.get("over_refusal") for f in figures]),
                "deficiencies": {d: n / len(figures) for d, n in deficiencies.most_common()} if figures else {}}

    return {"kinds": [ALL, *kinds],
            "baseline": row(INPUT, by_arm[INPUT]) if INPUT in by_arm else None,
            "arms": [row(arm, by_arm[arm]) for arm in TRAINED_ARMS if arm in by_arm]}


def arms_running(*, round: TrainingRound) -> bool:
    return ArmRun.objects.filter(round=round, status__in=[ArmRun.Status.PENDING, ArmRun.Status.RUNNING]).exists()
