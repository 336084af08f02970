"""The counts behind the review dashboard: a pair's agreement cells rewritten as reviews change it, and
every count recomputed from the rows (`rebuild_review_stats`). See models.PairCount for the design."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby

from django.apps import apps as django_apps
from django.db import connection, transaction
from django.db.models import Count

from .agreement import LABELS, TallyKey, pair_tally

COUNT_MODELS = ("PairCount", "ReviewerCount", "AgreementCount")  # also the order writers lock them in
CELL_FIELDS = ("kind", "rater_a", "rater_b", "label_a", "label_b")


def _valid(verdict) -> object:
    return (verdict or {}).get("valid")


def pair_agreement_cells(pair) -> set[TallyKey]:
    """The pair's agreement cells as its decisions and verdicts are now (1 query)."""
    PairAssignment = django_apps.get_model("curation", "PairAssignment")
    votes = dict(PairAssignment.objects.filter(pair_id=pair.pk, decision__in=LABELS).values_list("user_id", "decision"))
    return set(
        pair_tally(votes, chosen_valid=_valid(pair.chosen_verdict), rejected_valid=_valid(pair.rejected_verdict))
    )


def counts_lock(model, keys: list[tuple]) -> None:
    """Lock (creating at 0 when missing) the count rows with these keys, in key order, in one statement.
    A transaction that changes several counts through several statements takes their locks here first, so
    concurrent writers always lock count rows in the same order and never deadlock."""
    if not keys:
        return
    (key,) = model._meta.constraints
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(model._meta.get_field(name).column) for name in key.fields)
    values = ", ".join(["(" + ", ".join(["%s"] * (len(key.fields) + 1)) + ")"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}, n) VALUES {values} ON CONFLICT ({columns}) "
            f"DO UPDATE SET n = {table}.n + excluded.n",
            [value for row in sorted(set(keys)) for value in (*row, 0)],
        )


def pair_agreement_refresh(pair) -> None:
    """Rewrite the pair's agreement cells to match its decisions and verdicts now; call it last in the
    transaction that changed them, with the pair's row locked (so nobody else changes them meanwhile).
    2 queries when nothing changed; the AgreementCount trigger counts what does."""
    AgreementCell = django_apps.get_model("curation", "AgreementCell")
    AgreementCount = django_apps.get_model("curation", "AgreementCount")
    cells = pair_agreement_cells(pair)
    stored = {
        tuple(cell): pk for pk, *cell in AgreementCell.objects.filter(pair_id=pair.pk).values_list("pk", *CELL_FIELDS)
    }
    gone, new = set(stored) - cells, cells - set(stored)
    if gone and new:  # two statements will change counts: take their locks in key order first
        counts_lock(AgreementCount, [(pair.project_id, *cell) for cell in gone | new])
    if gone:
        AgreementCell.objects.filter(pk__in=[stored[cell] for cell in gone]).delete()
    if new:
        AgreementCell.objects.bulk_create(
            AgreementCell(pair_id=pair.pk, project_id=pair.project_id, **dict(zip(CELL_FIELDS, cell)))
            for cell in sorted(new)
        )


# --- recomputing from the rows ---------------------------------------------------------------------------


@dataclass
class ReviewStats:
    """A project's counts, keyed as stored (zeros left out): {key tuple: n} per count model."""

    pairs: dict = field(default_factory=dict)  # (round id, deficiency, status) → n
    reviewers: dict = field(default_factory=dict)  # (user id, action) → n
    agreement: dict = field(default_factory=dict)  # (kind, rater a, rater b, label a, label b) → n

    def differences(self, other: ReviewStats) -> list[str]:
        out = []
        for name in ("pairs", "reviewers", "agreement"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key in sorted(set(mine) | set(theirs), key=repr):
                if mine.get(key, 0) != theirs.get(key, 0):
                    out.append(f"{name} {key}: {mine.get(key, 0)} ≠ {theirs.get(key, 0)}")
        return out


def review_stats_stored(*, project_id: int, apps=django_apps) -> ReviewStats:
    stats = ReviewStats()
    for name, target, fields in (
        ("PairCount", stats.pairs, ("round_id", "deficiency", "status")),
        ("ReviewerCount", stats.reviewers, ("user_id", "action")),
        ("AgreementCount", stats.agreement, CELL_FIELDS),
    ):
        for *key, n in (
            apps.get_model("curation", name)
            .objects.filter(project_id=project_id)
            .exclude(n=0)
            .values_list(*fields, "n")
        ):
            target[tuple(key)] = n
    return stats


def agreement_cells_from_rows(*, project_id: int, apps=django_apps) -> Iterator[tuple[int, TallyKey]]:
    """(pair id, cell) for every agreement cell the project's decisions and verdicts make: `pair_tally`
    over every pair someone approved or rejected, streamed in pair order."""
    PairAssignment = apps.get_model("curation", "PairAssignment")
    decisions = (
        PairAssignment.objects.filter(pair__project_id=project_id, decision__in=LABELS)
        .order_by("pair_id")
        .values_list("pair_id", "user_id", "decision", "pair__chosen_verdict__valid", "pair__rejected_verdict__valid")
    )
    for pair_id, rows in groupby(decisions.iterator(chunk_size=20_000), key=lambda row: row[0]):
        rows = list(rows)
        for cell in pair_tally(
            {user: decision for _, user, decision, _, _ in rows}, chosen_valid=rows[0][3], rejected_valid=rows[0][4]
        ):
            yield pair_id, cell


def review_stats_compute(*, project_id: int, apps=django_apps, cells: list | None = None) -> ReviewStats:
    """The counts as the rows say they should be: GROUP BY over the project's pairs and events, and the
    agreement cells of its decisions (`cells`, when the caller has them already)."""
    PreferencePair = apps.get_model("curation", "PreferencePair")
    ReviewEvent = apps.get_model("curation", "ReviewEvent")
    stats = ReviewStats()
    for round_id, deficiency, status, n in (
        PreferencePair.objects.filter(project_id=project_id)
        .order_by()
        .values_list("round_id", "deficiency", "status")
        .annotate(n=Count("id"))
    ):
        stats.pairs[(round_id or 0, deficiency, status)] = n
    for user_id, action, n in (
        ReviewEvent.objects.filter(pair__project_id=project_id)
        .order_by()
        .values_list("user_id", "action")
        .annotate(n=Count("id"))
    ):
        stats.reviewers[(user_id or 0, action)] = n
    if cells is None:
        cells = list(agreement_cells_from_rows(project_id=project_id, apps=apps))
    stats.agreement = dict(Counter(cell for _, cell in cells))
    return stats


def review_stats_differences(*, project_id: int) -> list[str]:
    """What the stored counts get wrong (stored ≠ rows), [] when nothing. Writers wait while it reads, so
    stored and recomputed counts are of the same moment."""
    with transaction.atomic():
        _lock_counts(django_apps, mode="SHARE")
        return review_stats_stored(project_id=project_id).differences(review_stats_compute(project_id=project_id))


def _lock_counts(apps, *, mode: str) -> None:
    """Keep writers out of the count tables until the transaction ends (readers go on). Every review
    transaction writes to one of them (a trigger, or the agreement cells) before it commits, so those that
    changed rows already finish first, and the rest wait and add their changes to what is read here."""
    if connection.vendor == "postgresql":
        tables = ", ".join(
            connection.ops.quote_name(apps.get_model("curation", name)._meta.db_table) for name in COUNT_MODELS
        )
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN {mode} MODE")
    # SQLite has one writer at a time, and the settings begin every transaction IMMEDIATE.


def review_stats_rebuild(*, project_ids: list[int] | None = None, apps=django_apps) -> dict[int, list[str]]:
    """Recompute the counts (and agreement cells) of the given projects from the rows and store them — of
    all projects, dropping the counts of deleted ones, when None; returns, per project, what was wrong."""
    Project = apps.get_model("projects", "Project")
    AgreementCell = apps.get_model("curation", "AgreementCell")
    models = [apps.get_model("curation", name) for name in COUNT_MODELS]
    PairCount, ReviewerCount, AgreementCount = models
    out = {}
    with transaction.atomic():
        _lock_counts(apps, mode="EXCLUSIVE")
        if project_ids is None:
            project_ids = list(Project.objects.order_by("pk").values_list("pk", flat=True))
            for model in models:
                model.objects.exclude(project_id__in=project_ids).delete()
        for project_id in project_ids:
            cells = list(agreement_cells_from_rows(project_id=project_id, apps=apps))
            computed = review_stats_compute(project_id=project_id, apps=apps, cells=cells)
            out[project_id] = review_stats_stored(project_id=project_id, apps=apps).differences(computed)
            AgreementCell.objects.filter(project_id=project_id).delete()
            for model in models:
                model.objects.filter(project_id=project_id).delete()
            PairCount.objects.bulk_create(
                PairCount(project_id=project_id, round_id=r, deficiency=d, status=s, n=n)
                for (r, d, s), n in computed.pairs.items()
            )
            ReviewerCount.objects.bulk_create(
                ReviewerCount(project_id=project_id, user_id=u, action=a, n=n)
                for (u, a), n in computed.reviewers.items()
            )
            # The AgreementCount trigger counts the cells from zero as they go in.
            AgreementCell.objects.bulk_create(
                (
                    AgreementCell(pair_id=pair_id, project_id=project_id, **dict(zip(CELL_FIELDS, cell)))
                    for pair_id, cell in cells
                ),
                batch_size=5_000,
            )
    return out
