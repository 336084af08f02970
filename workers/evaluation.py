"""Evaluation: a policy's answers to held-out queries, scored by the checker — strict pass@1 (the headline) and
BFCL-rule pass@1, per kind and for the call-kind groups, over-refusal, the deficiency histogram (greedy
decoding, so one number per checkpoint) — and, where the query's tools are executable, Solve-F1 (the answer's
calls run in the sandbox; FTRL's metric). Each query's output and verdicts come back as records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from workers.llm.base import BaseBackend, SamplingParams
from workers.progress import Progress

# Aggregates over query kinds reported beside the per-kind figures (issue 12's targets are stated on them).
KIND_GROUPS = {
    "call_kinds": ("single", "multiple", "parallel", "parallel_multiple", "multi_hop"),  # every kind with calls
    "three_kinds": ("single", "multiple", "parallel"),
}
GROUP_LABELS = {"call_kinds": "call kinds", "three_kinds": "single + multiple + parallel"}
NO_CALL = "no_call"  # the deficiency of an answer without a call where one was expected (over-refusal)


@dataclass(frozen=True)
class EvalConfig:
    max_tokens: int = 96  # enough for the longest reference answer of the demo environment
    temperature: float = 0.0  # greedy: pass@1
    batch_size: int = 32
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalRecord:
    """One query's answer and its verdicts: strict (valid, deficiency, detail, reward) and BFCL-rule (valid_bfcl)."""

    index: int  # position in the prompts given to `evaluate`
    kind: str
    output: str
    valid: bool
    valid_bfcl: bool
    deficiency: str  # "" when valid (strict rule)
    detail: str
    reward: float
    expects_call: bool  # the ground truth has calls
    solve_f1: float | None = None  # None where the query's tools cannot run
    category: str | None = None  # BFCL's category of an imported BFCL query


@dataclass
class Evaluation:
    """`metrics` (JSON-serialisable, what an EvalRun stores) and one record per query, in prompt order."""

    metrics: dict
    records: list[EvalRecord] = field(default_factory=list)


def evaluate(
    backend: BaseBackend,
    prompts: Sequence[str],
    checkers: Sequence[Callable[..., object]],
    kinds: Sequence[str],
    config: EvalConfig = EvalConfig(),
    progress: Progress | None = None,
    solvers: Sequence[Callable[[str], object] | None] | None = None,
    categories: Sequence[str | None] | None = None,
) -> Evaluation:
    """Answer each prompt greedily with the policy behind `backend` and score it. `checkers` are one
    `rewards.checker.Checker` per query (called with `rule="strict"` and `rule="bfcl"`, read for
    `expects_call`); `solvers` (one per query, None where the tools cannot run; each returns an
    `rewards.execution.SolveScore`) add Solve-F1; `categories` (BFCL's category of an imported BFCL query,
    else None) add "by_category". `progress` gets {"done", "total"} (prompts answered) after each batch. The metrics
    are described in `summarise`."""
    params = SamplingParams(n=1, max_tokens=config.max_tokens, temperature=config.temperature, stop=config.stop, seed=0)
    records: list[EvalRecord] = []
    for start in range(0, len(prompts), config.batch_size):
        idx = range(start, min(len(prompts), start + config.batch_size))
        outputs = backend.generate([prompts[i] for i in idx], params)
        for i, samples in zip(idx, outputs):
            text = samples[0].text
            checker = checkers[i]
            strict = checker(text, rule="strict")
            bfcl = checker(text, rule="bfcl")
            solver = solvers[i] if solvers is not None else None
            records.append(
                EvalRecord(
                    index=i,
                    kind=kinds[i],
                    output=text,
                    valid=bool(strict.valid),
                    valid_bfcl=bool(bfcl.valid),
                    deficiency=strict.deficiency,
                    detail=strict.detail,
                    reward=float(strict.reward),
                    expects_call=bool(checker.expects_call),
                    solve_f1=float(solver(text).f1) if solver is not None else None,
                    category=categories[i] if categories is not None else None,
                )
            )
        if progress:
            progress({"done": idx.stop, "total": len(prompts)})
    return Evaluation(summarise(records, with_solve=solvers is not None), records)


def _rates(records: Sequence[EvalRecord]) -> dict:
    """n, strict and BFCL-rule pass@1, and (where some query expects a call) over-refusal: the share of the
    call queries answered without any call."""
    n = len(records)
    figures = {
        "n": n,
        "pass_rate": sum(r.valid for r in records) / n if n else 0.0,
        "pass_rate_bfcl": sum(r.valid_bfcl for r in records) / n if n else 0.0,
    }
    calls = [r for r in records if r.expects_call]
    if calls:
        figures["over_refusal"] = sum(r.deficiency == NO_CALL for r in calls) / len(calls)
    return figures


def _group(records: Iterable[EvalRecord], key) -> dict[str, list[EvalRecord]]:
    groups: dict[str, list[EvalRecord]] = {}
    for record in records:
        value = key(record)
        if value is not None:
            groups.setdefault(value, []).append(record)
    return dict(sorted(groups.items()))


def summarise(records: Sequence[EvalRecord], with_solve: bool = False) -> dict:
    """The metrics of scored records:
    {"n", "pass_rate" (strict), "pass_rate_bfcl", "mean_reward", "call_n", "over_refusal" (None without call
    queries), "by_kind": {kind: {"n", "pass_rate", "pass_rate_bfcl"[, "over_refusal"][, "solve_f1"]}},
    "groups": {"call_kinds" | "three_kinds": same figures, for the groups with queries},
    "deficiencies": {name: count} (strict), and "by_category" when some record has a BFCL category};
    `with_solve` adds "solve_n" and "solve_f1" (the mean over the queries with a solver, None when none has)."""
    n = len(records)
    overall = _rates(records)
    call_n = sum(r.expects_call for r in records)
    metrics = {
        "n": n,
        "pass_rate": overall["pass_rate"],
        "pass_rate_bfcl": overall["pass_rate_bfcl"],
        "mean_reward": sum(r.reward for r in records) / n if n else 0.0,
        "call_n": call_n,
        "over_refusal": overall.get("over_refusal"),
        "by_kind": {kind: _rates(rows) for kind, rows in _group(records, lambda r: r.kind).items()},
        "groups": {},
        "deficiencies": dict(Counter(r.deficiency for r in records if not r.valid).most_common()),
    }
    for name, kinds in KIND_GROUPS.items():
        rows = [r for r in records if r.kind in kinds]
        if rows:
            metrics["groups"][name] = _rates(rows)
    by_category = _group(records, lambda r: r.category)
    if by_category:
        metrics["by_category"] = {
            c: {k: v for k, v in _rates(rows).items() if k != "over_refusal"} for c, rows in by_category.items()
        }
    if with_solve:
        solved = [r for r in records if r.solve_f1 is not None]
        metrics["solve_n"] = len(solved)
        metrics["solve_f1"] = sum(r.solve_f1 for r in solved) / len(solved) if solved else None
        for kind, rows in _group(solved, lambda r: r.kind).items():
            metrics["by_kind"][kind]["solve_f1"] = sum(r.solve_f1 for r in rows) / len(rows)
    return metrics


# --- before → after on the same queries ----------------------------------------------------------------------


def paired_changes(
    pairs: Sequence[tuple[object, object]], *, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> list[dict]:
    """The before → after change of each headline figure, with its paired bootstrap interval (resampling the
    queries), from (before, after) results of the same queries — anything with `kind`, `valid`, `valid_bfcl`,
    `deficiency` and `expects_call` (an EvalRecord, or a stored EvalResult). One dict per figure, in the order
    to show them: {"key", "label", "n", "before", "after", "diff", "low", "high", "confidence", "resamples"};
    figures with no query are left out. Figures: pass@1 of all queries, BFCL-rule pass@1, pass@1 of each
    KIND_GROUPS group and of each kind, and over-refusal (no call on a call query: lower is better)."""
    from workers.bootstrap import paired_bootstrap

    def figure(key: str, label: str, rows, outcome) -> dict | None:
        if not rows:
            return None
        interval = paired_bootstrap(
            [outcome(b) for b, _ in rows],
            [outcome(a) for _, a in rows],
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
        return {"key": key, "label": label, **interval.as_dict()}

    def passed(r) -> float:
        return float(r.valid)

    kinds = sorted({a.kind for _, a in pairs})
    figures = [
        figure("pass_rate", "pass@1", pairs, passed),
        figure("pass_rate_bfcl", "BFCL-rule pass@1", pairs, lambda r: float(r.valid_bfcl)),
        *[
            figure(f"group:{name}", f"{GROUP_LABELS[name]} pass@1", [p for p in pairs if p[1].kind in group], passed)
            for name, group in KIND_GROUPS.items()
        ],
        *[figure(f"kind:{kind}", f"{kind} pass@1", [p for p in pairs if p[1].kind == kind], passed) for kind in kinds],
        figure(
            "over_refusal",
            "over-refusal",
            [p for p in pairs if p[1].expects_call],
            lambda r: float(r.deficiency == NO_CALL),
        ),
    ]
    return [f for f in figures if f is not None]


def format_change(change: dict) -> str:
    """`call kinds pass@1 31.2% → 37.0% (+5.8 points, 95% CI +3.9 … +7.7)`."""
    return (
        f"{change['label']} {change['before']:.1%} → {change['after']:.1%} ({change['diff'] * 100:+.1f} points, "
        f"{change['confidence']:.0%} CI {change['low'] * 100:+.1f} … {change['high'] * 100:+.1f}; "
        f"n={change['n']})"
    )
