"""Agreement figures: annotator vs annotator (percent and Cohen's kappa on approve/reject), and human vs
checker — read from contingency tables that the review services keep as counts (AgreementCount)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from itertools import combinations

from django.contrib.auth import get_user_model

from .models import AgreementCount, PreferencePair

LABELS = ("approve", "reject")
ANNOTATORS, CHECKER = AgreementCount.Kind.ANNOTATORS.value, AgreementCount.Kind.CHECKER.value

Cells = Mapping[tuple[str, str], int]  # (label of rater a, label of rater b) → how many items
TallyKey = tuple[str, int, int, str, str]  # (kind, rater a, rater b, label a, label b): an AgreementCount's key


def percent_from_cells(cells: Cells) -> float | None:
    n = sum(cells.values())
    return sum(k for (x, y), k in cells.items() if x == y) / n if n else None


def kappa_from_cells(cells: Cells) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e) from two raters' contingency table; None without items.
    When chance agreement is total (both always say the same one thing) κ is 1 if they agree."""
    n = sum(cells.values())
    if not n:
        return None
    observed = sum(k for (x, y), k in cells.items() if x == y) / n
    rater_a, rater_b = Counter(), Counter()
    for (x, y), k in cells.items():
        rater_a[x] += k
        rater_b[y] += k
    expected = sum((rater_a[label] / n) * (rater_b[label] / n) for label in set(rater_a) | set(rater_b))
    if expected == 1:
        return 1.0 if observed == 1 else 0.0
    return (observed - expected) / (1 - expected)


def percent_agreement(a: list[str], b: list[str]) -> float | None:
    return percent_from_cells(Counter(zip(a, b)))


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """κ for two raters' labels on the same items (a[i] and b[i] are on item i); None without items."""
    return kappa_from_cells(Counter(zip(a, b)))


def checker_label_of(chosen_valid, rejected_valid) -> str | None:
    """What the checker says of a pair: approve when its chosen answer passes and the rejected one does
    not, reject when the reverse; None when it cannot tell (no verdicts, or both alike)."""
    if chosen_valid is None or rejected_valid is None or chosen_valid == rejected_valid:
        return None
    return "approve" if chosen_valid else "reject"


def checker_label(pair: PreferencePair) -> str | None:
    return checker_label_of((pair.chosen_verdict or {}).get("valid"), (pair.rejected_verdict or {}).get("valid"))


def pair_tally(votes: Mapping[int, str], *, chosen_valid, rejected_valid) -> Counter[TallyKey]:
    """What one pair adds to its project's agreement tables, given who decided what on it ({user id:
    decision}) and its verdicts' `valid`: a cell for every two people who approved or rejected it (the
    lower user id as rater a), and, when the checker can tell, one (people's majority — approve on a tie —,
    checker) cell. The running counts and their rebuild both go through here."""
    labelled = {user: decision for user, decision in votes.items() if decision in LABELS}
    tally: Counter[TallyKey] = Counter()
    for u, v in combinations(sorted(labelled), 2):
        tally[(ANNOTATORS, u, v, labelled[u], labelled[v])] += 1
    machine = checker_label_of(chosen_valid, rejected_valid)
    if machine is not None and labelled:
        people = list(labelled.values())
        tally[(CHECKER, 0, 0, max(LABELS, key=people.count), machine)] += 1
    return tally


def agreement_figures(counts: Iterable[tuple[TallyKey, int]], names: Mapping[int, str]) -> dict:
    """{"annotators": {"pairs", "percent", "kappa", "by_pair": [...]}, "checker": {"pairs", "percent", "kappa"}}
    from the cells of a project's tables ("pairs" counts comparisons: one per two people on one pair)."""
    pooled: Counter = Counter()
    checker: Counter = Counter()
    per_pair: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for (kind, rater_a, rater_b, label_a, label_b), n in counts:
        if kind == ANNOTATORS:
            pooled[(label_a, label_b)] += n
            per_pair[(rater_a, rater_b)][(label_a, label_b)] += n
        elif kind == CHECKER:
            checker[(label_a, label_b)] += n
    return {
        "annotators": {
            "pairs": sum(pooled.values()),
            "percent": percent_from_cells(pooled),
            "kappa": kappa_from_cells(pooled),
            "by_pair": [
                {
                    "annotators": [names.get(u, "(deleted user)"), names.get(v, "(deleted user)")],
                    "pairs": sum(cells.values()),
                    "percent": percent_from_cells(cells),
                    "kappa": kappa_from_cells(cells),
                }
                for (u, v), cells in sorted(per_pair.items())
                if sum(cells.values())
            ],
        },
        "checker": {
            "pairs": sum(checker.values()),
            "percent": percent_from_cells(checker),
            "kappa": kappa_from_cells(checker),
        },
    }


def project_agreement(project) -> dict:
    """The project's agreement figures (see `agreement_figures`), from its stored cells: 1 query, 2 when
    two people have reviewed the same pair. Bounded by the number of people, not of pairs."""
    counts = [
        ((kind, a, b, la, lb), n)
        for kind, a, b, la, lb, n in AgreementCount.objects.filter(project_id=project.pk)
        .exclude(n=0)
        .values_list("kind", "rater_a", "rater_b", "label_a", "label_b", "n")
    ]
    raters = {r for (kind, a, b, *_), _n in counts if kind == ANNOTATORS for r in (a, b)}
    names = dict(get_user_model().objects.filter(pk__in=raters).values_list("pk", "username")) if raters else {}
    return agreement_figures(counts, names)
