"""Reads of arm runs: a round's runs, and its arms table — per arm and query kind, strict pass@1 as the mean over
seeds with a 95% paired bootstrap interval against the round's input policy on identical eval queries, plus
over-refusal and the deficiency histogram."""

from __future__ import annotations

from collections import Counter

from apps.catalog.models import Query
from apps.training.models import TrainingRound
from workers.evaluation import KIND_GROUPS

from .data import INPUT, TRAINED_ARMS
from .models import ArmRun
from .outcomes import paired_interval, run_outcomes

ALL = "all"  # the column of every eval query together
CALL_KINDS = "call_kinds"  # the column of every kind with calls (KIND_GROUPS): the figure a round is judged by


def arm_runs_for_round(*, round: TrainingRound):
    return ArmRun.objects.filter(round=round).select_related("checkpoint", "eval_run").order_by("arm", "seed")


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _eval(run: ArmRun) -> dict:
    return (run.eval_run.metrics if run.eval_run is not None else None) or run.metrics.get("eval") or {}


def members(column: str) -> tuple[str, ...] | None:
    """The query kinds a column of the arms table counts (None: every query)."""
    return None if column == ALL else KIND_GROUPS.get(column, (column,))


def column_rate(metrics: dict, column: str) -> tuple[float, int] | None:
    """(pass rate, n) of a column in one eval run's metrics: a group's rate pools its kinds' queries."""
    if column == ALL:
        return (metrics["pass_rate"], metrics.get("n")) if metrics.get("pass_rate") is not None else None
    parts = [p for k, p in metrics.get("by_kind", {}).items() if k in members(column) and p and p.get("n")]
    n = sum(p["n"] for p in parts)
    return (sum(p["pass_rate"] * p["n"] for p in parts) / n, n) if n else None


def arms_table(*, round: TrainingRound) -> dict:
    """{"kinds", "baseline": row | None, "arms": [row]} where a row is {"arm", "label", "seeds": done, "runs",
    "status", "cells": {kind: {"pass_rate", "n", "interval"}}, "over_refusal", "deficiencies"}; the columns are
    "all", then "call_kinds" (the kinds with calls together) where the eval has such kinds, then each kind.
    Intervals are None without per-query outcomes (or for the baseline itself)."""
    runs = list(arm_runs_for_round(round=round))
    by_arm: dict[str, list[ArmRun]] = {}
    for run in runs:
        by_arm.setdefault(run.arm, []).append(run)
    baseline_run = next((r for r in by_arm.get(INPUT, []) if r.status == ArmRun.Status.DONE), None)
    before = run_outcomes(baseline_run.eval_run) if baseline_run and baseline_run.eval_run else None
    kind_of = dict(Query.objects.filter(pk__in=list(before)).values_list("id", "kind")) if before else {}
    kinds = sorted({k for run in runs if run.status == ArmRun.Status.DONE for k in _eval(run).get("by_kind", {})})
    columns = [ALL, *([CALL_KINDS] if set(kinds) & set(KIND_GROUPS[CALL_KINDS]) else []), *kinds]
    labels = dict(ArmRun.Arm.choices)

    def row(arm: str, arm_runs: list[ArmRun]) -> dict:
        done = [r for r in arm_runs if r.status == ArmRun.Status.DONE]
        figures = [_eval(r) for r in done]
        cells = {}
        for column in columns:
            rates = [r for r in (column_rate(f, column) for f in figures) if r is not None]
            cells[column] = {
                "pass_rate": _mean([r[0] for r in rates]),
                "n": rates[0][1] if rates else None,
                "interval": None,
            }
        if before and arm != INPUT and done:
            outcomes = [run_outcomes(r.eval_run) for r in done if r.eval_run is not None]
            if outcomes and all(o is not None for o in outcomes):
                for kind in columns:
                    counted = members(kind)
                    ids = sorted(
                        q
                        for q in before
                        if (counted is None or kind_of.get(q) in counted) and all(q in o for o in outcomes)
                    )
                    if ids:  # the seed-mean of each query's outcome against the input's, query by query
                        cells.setdefault(kind, {"pass_rate": None, "n": None})["interval"] = paired_interval(
                            [float(before[q]) for q in ids], [_mean([float(o[q]) for o in outcomes]) for q in ids]
                        )
        deficiencies: Counter = Counter()
        for f in figures:
            deficiencies.update(f.get("deficiencies", {}))
        statuses = Counter(r.status for r in arm_runs)
        return {
            "arm": arm,
            "label": labels.get(arm, arm),
            "seeds": len(done),
            "runs": arm_runs,
            "status": ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())),
            "cells": cells,
            "over_refusal": _mean([f.get("over_refusal") for f in figures]),
            "deficiencies": {d: n / len(figures) for d, n in deficiencies.most_common()} if figures else {},
        }

    return {
        "kinds": columns,
        "baseline": row(INPUT, by_arm[INPUT]) if INPUT in by_arm else None,
        "arms": [row(arm, by_arm[arm]) for arm in TRAINED_ARMS if arm in by_arm],
    }


def arms_running(*, round: TrainingRound) -> bool:
    return ArmRun.objects.filter(round=round, status__in=[ArmRun.Status.PENDING, ArmRun.Status.RUNNING]).exists()
