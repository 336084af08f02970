"""Agreement figures: annotator vs annotator (percent and Cohen's kappa on approve/reject), and human vs
checker."""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations

from .models import PairAssignment, PreferencePair

LABELS = ("approve", "reject")


def percent_agreement(a: list[str], b: list[str]) -> float | None:
    return sum(x == y for x, y in zip(a, b)) / len(a) if a else None


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e) for two raters' labels on the same items; None without items.
    When chance agreement is total (both always say the same one thing) κ is 1 if they agree."""
    if not a:
        return None
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    expected = sum((a.count(label) / n) * (b.count(label) / n) for label in set(a) | set(b))
    if expected == 1:
        return 1.0 if observed == 1 else 0.0
    return (observed - expected) / (1 - expected)


def checker_label(pair: PreferencePair) -> str | None:
    """What the checker says of the pair: approve when its chosen answer passes and the rejected one
    does not, reject when the reverse; None when it cannot tell (no verdicts, or both alike)."""
    chosen = (pair.chosen_verdict or {}).get("valid")
    rejected = (pair.rejected_verdict or {}).get("valid")
    if chosen is None or rejected is None or chosen == rejected:
        return None
    return "approve" if chosen else "reject"


def project_agreement(project) -> dict:
    """{"annotators": {"pairs", "percent", "kappa", "by_pair": [...]}, "checker": {"pairs", "percent", "kappa"}}
    from the approve/reject decisions people made (one per person per pair)."""
    decisions: dict[int, dict[int, str]] = defaultdict(dict)
    names: dict[int, str] = {}
    rows = (PairAssignment.objects.filter(pair__project=project, decision__in=LABELS)
            .values_list("pair_id", "user_id", "user__username", "decision"))
    for pair_id, user_id, username, decision in rows:
        decisions[pair_id][user_id] = decision
        names[user_id] = username
    pooled_a, pooled_b = [], []
    per_pair: dict[tuple[int, int], tuple[list, list]] = defaultdict(lambda: ([], []))
    for votes in decisions.values():
        for u, v in combinations(sorted(votes), 2):
            pooled_a.append(votes[u])
            pooled_b.append(votes[v])
            per_pair[(u, v)][0].append(votes[u])
            per_pair[(u, v)][1].append(votes[v])
    human, machine = [], []
    pairs = PreferencePair.objects.filter(pk__in=list(decisions)).only("pk", "chosen_verdict", "rejected_verdict")
    for pair in pairs:
        label = checker_label(pair)
        votes = list(decisions[pair.pk].values())
        if label is None or not votes:
            continue
        human.append(max(LABELS, key=votes.count))  # the majority (approve on a tie)
        machine.append(label)
    return {
        "annotators": {
            "pairs": len(pooled_a), "percent": percent_agreement(pooled_a, pooled_b),
            "kappa": cohen_kappa(pooled_a, pooled_b),
            "by_pair": [{"annotators": [names[u], names[v]], "pairs": len(a), "percent": percent_agreement(a, b),
                         "kappa": cohen_kappa(a, b)} for (u, v), (a, b) in sorted(per_pair.items())],
        },
        "checker": {"pairs": len(human), "percent": percent_agreement(human, machine),
                    "kappa": cohen_kappa(human, machine)},
    }
