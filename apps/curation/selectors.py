"""Reads for the review pages: the bulk list with its filters, one pair with all it shows, queues, progress.

Every function makes a fixed number of SQL queries, whatever the number of pairs or events.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from apps.catalog.models import QueryTool
from apps.projects.models import Membership, Project
from apps.training.models import TrainingRound
from rewards.checker import check

from .models import PairAssignment, PairCount, PreferencePair, ReviewerCount, ReviewEvent

# Bulk view orders: uncertainty is the review queue's own order (smallest gap first, as leases go).
SORTS = {
    "uncertainty": ("gap", "id"),
    "gap": ("-gap", "id"),
    "newest": ("-id",),
}
REVIEWED = (
    PreferencePair.Status.APPROVED,
    PreferencePair.Status.EDITED,
    PreferencePair.Status.REJECTED,
    PreferencePair.Status.FLAGGED,
)


@dataclass(frozen=True)
class PairFilters:
    """The pair filters of the bulk view and the REST pair list (`pairs_filtered`); empty or None: any."""

    status: str = ""
    round_id: int | None = None
    query_id: int | None = None
    deficiency: str = ""
    tool: str = ""  # a tool offered with the pair's query, by name
    gap_min: float | None = None
    gap_max: float | None = None
    text: str = ""  # found in the prefix or either fragment
    assigned_to_me: bool | None = None  # True: pairs assigned (leased) to the user; False: all others
    sort: str = "uncertainty"

    @property
    def by_counted_fields_only(self) -> bool:
        """Whether only status, round and deficiency filter: what the running counts (PairCount) count by."""
        return (
            self.query_id is None
            and not self.tool
            and self.gap_min is None
            and self.gap_max is None
            and not self.text
            and self.assigned_to_me is None
        )


# The bulk view counts matches up to this many and then says "more than 1,000": a count is never a scan of them all.
COUNT_LIMIT = 1_000


def pairs_filtered(pairs: QuerySet[PreferencePair], *, filters: PairFilters, user) -> QuerySet[PreferencePair]:
    """`pairs` narrowed by `filters` (unsorted): the one meaning of the pair filters, for the bulk view and the
    REST list. 1 query when `assigned_to_me` is set (the user's live leases), none otherwise."""
    if filters.status:
        pairs = pairs.filter(status=filters.status)
    if filters.round_id is not None:
        pairs = pairs.filter(round_id=filters.round_id)
    if filters.query_id is not None:
        pairs = pairs.filter(query_id=filters.query_id)
    if filters.deficiency:
        pairs = pairs.filter(deficiency=filters.deficiency)
    if filters.tool:
        pairs = pairs.filter(Exists(QueryTool.objects.filter(query=OuterRef("query"), tool__name=filters.tool)))
    if filters.gap_min is not None:
        pairs = pairs.filter(gap__gte=filters.gap_min)
    if filters.gap_max is not None:
        pairs = pairs.filter(gap__lte=filters.gap_max)
    text = filters.text.strip()
    if text:
        pairs = pairs.filter(Q(chosen__icontains=text) | Q(rejected__icontains=text) | Q(prefix__icontains=text))
    if filters.assigned_to_me is not None:
        # The few pairs the user holds a live lease on, by id (1 query): `assignee = me OR id IN (…)` is two
        # index lookups, where OR EXISTS(…) would test every pair of the project.
        held = list(
            PairAssignment.objects.filter(user=user, decision="", leased_until__gt=timezone.now()).values_list(
                "pair_id", flat=True
            )
        )
        mine = Q(assignee=user) | Q(pk__in=held)
        pairs = pairs.filter(mine) if filters.assigned_to_me else pairs.exclude(mine)
    return pairs


def pair_list_for_review(*, project: Project, filters: PairFilters, user) -> QuerySet[PreferencePair]:
    """The bulk view's rows: the project's pairs filtered and sorted, with what a row shows joined in."""
    pairs = (
        PreferencePair.objects.filter(project=project)
        .select_related("round", "query", "assignee", "reviewed_by")
        .defer(
            "query__messages",
            "query__ground_truth",
            "query__metadata",
            "query__sub_answers",
            "query__reference_output",
            "query__final_answer",
            "chosen_verdict",
            "rejected_verdict",
        )
    )
    pairs = pairs_filtered(pairs, filters=filters, user=user)
    return pairs.order_by(*SORTS.get(filters.sort, SORTS["uncertainty"]))


def pair_list_count(*, project: Project, filters: PairFilters, pairs: QuerySet[PreferencePair]) -> tuple[int, bool]:
    """(how many pairs match the bulk view's filters, whether that is exact) in 1 query. Filtered by status,
    round and deficiency only: exact, from the running counts. Other filters: the matches are counted up
    to COUNT_LIMIT + 1 (a LIMIT-ed subquery), and more than COUNT_LIMIT reads as (COUNT_LIMIT, False)."""
    if filters.by_counted_fields_only:
        counts = PairCount.objects.filter(project_id=project.pk)
        if filters.status:
            counts = counts.filter(status=filters.status)
        if filters.round_id is not None:
            counts = counts.filter(round_id=filters.round_id)
        if filters.deficiency:
            counts = counts.filter(deficiency=filters.deficiency)
        return counts.aggregate(n=Sum("n"))["n"] or 0, True
    return _count_up_to_limit(pairs.order_by())


def _count_up_to_limit(pairs: QuerySet[PreferencePair]) -> tuple[int, bool]:
    """(min(matches, COUNT_LIMIT), whether that is exact) in 1 query: a LIMIT-ed subquery, never a full scan."""
    n = pairs.values("pk")[: COUNT_LIMIT + 1].count()
    return min(n, COUNT_LIMIT), n <= COUNT_LIMIT


def pair_filter_choices(*, project: Project) -> dict:
    """What the bulk view's filter menus offer: the project's rounds and tool names."""
    return {
        "rounds": list(TrainingRound.objects.filter(project=project).order_by("number").values_list("id", "number")),
        "tools": list(project.tools.order_by("name").values_list("name", flat=True).distinct()),
    }


def pairs_for_focus(*, project: Project) -> QuerySet[PreferencePair]:
    """One pair with everything the focus view shows: query, tools in prompt order, round, people."""
    return (
        PreferencePair.objects.filter(project=project)
        .select_related("query", "round", "tree", "assignee", "reviewed_by")
        .prefetch_related(Prefetch("query__query_tools", queryset=QueryTool.objects.select_related("tool")))
    )


def pairs_in_project(*, project: Project) -> QuerySet[PreferencePair]:
    """The project's pairs, nothing joined (for permission checks before a write)."""
    return PreferencePair.objects.filter(project=project)


def pairs_by_ids(*, project: Project, ids: list[int]) -> list[PreferencePair]:
    """The listed pairs that belong to the project (others are invisible), in the order given."""
    found = {
        p.pk: p
        for p in PreferencePair.objects.filter(project=project, pk__in=ids).defer("chosen_verdict", "rejected_verdict")
    }
    return [found[i] for i in ids if i in found]


def pair_events(
    *, pair: PreferencePair, after_version: int | None = None, limit: int | None = None
) -> list[ReviewEvent]:
    """The pair's events with their users, oldest first (the last `limit` when given)."""
    events = ReviewEvent.objects.filter(pair=pair).select_related("user")
    if after_version is not None:
        events = events.filter(version__gt=after_version)
    if limit is None:
        return list(events.order_by("created_at", "pk"))
    return list(reversed(events.order_by("-created_at", "-pk")[:limit]))


def pair_peek_next(
    *, project: Project, user, exclude_pair_id: int | None = None, round_id: int | None = None
) -> int | None:
    """The pair the review queue will most likely lease to the user next (for preloading; no write):
    a pending one they have not had, not leased to someone else, smallest gap first. A wrong guess only
    costs a preload."""
    now = timezone.now()
    pairs = (
        PreferencePair.objects.filter(project=project, status=PreferencePair.Status.PENDING)
        .exclude(Exists(PairAssignment.objects.filter(pair=OuterRef("pk"), user=user)))
        .exclude(Q(assignee__isnull=False) & ~Q(assignee=user) & Q(lease_expires_at__gt=now))
    )
    if exclude_pair_id is not None:
        pairs = pairs.exclude(pk=exclude_pair_id)
    if round_id is not None:
        pairs = pairs.filter(round_id=round_id)
    return pairs.order_by("gap", "id").values_list("pk", flat=True).first()


def pairs_awaiting_adjudication(*, project: Project) -> QuerySet[PreferencePair]:
    """The reviewers' queue: flagged pairs, and pairs an annotator edited, smallest gap first."""
    adjudicator = Membership.objects.filter(
        project=project, user=OuterRef("reviewed_by"), role__in=(Membership.Role.REVIEWER, Membership.Role.ADMIN)
    )
    edited_by_annotator = (
        Q(status=PreferencePair.Status.EDITED) & ~Exists(adjudicator) & ~Q(reviewed_by__is_superuser=True)
    )
    return (
        PreferencePair.objects.filter(project=project)
        .filter(Q(status=PreferencePair.Status.FLAGGED) | edited_by_annotator)
        .order_by("gap", "id")
    )


def pairs_awaiting_adjudication_count(*, project: Project) -> tuple[int, bool]:
    """(how many pairs await a reviewer, whether that is exact): counted up to COUNT_LIMIT, like the bulk view."""
    return _count_up_to_limit(pairs_awaiting_adjudication(project=project))


def pair_next_for_adjudication(*, project: Project, exclude_pair_id: int | None = None) -> int | None:
    pairs = pairs_awaiting_adjudication(project=project)
    if exclude_pair_id is not None:
        pairs = pairs.exclude(pk=exclude_pair_id)
    return pairs.values_list("pk", flat=True).first()


def user_last_change(*, project: Project, user) -> ReviewEvent | None:
    """The user's latest change in the project, what `undo` reverts (skips left out); None when that
    change was itself an undo."""
    last = (
        ReviewEvent.objects.filter(pair__project=project, user=user)
        .exclude(action=ReviewEvent.Action.SKIP)
        .order_by("-created_at", "-pk")
        .first()
    )
    return None if last is None or last.action == ReviewEvent.Action.UNDO else last


def pair_previous_for_user(*, project: Project, user, current_pair_id: int) -> int | None:
    """The pair the user acted on before the current one (walking back through what they did)."""
    events = ReviewEvent.objects.filter(pair__project=project, user=user)
    on_current = events.filter(pair_id=current_pair_id)
    current_time = Subquery(on_current.order_by("-created_at").values("created_at")[:1])
    earlier = events.exclude(pair_id=current_pair_id).filter(Q(created_at__lt=current_time) | ~Exists(on_current))
    return earlier.order_by("-created_at", "-pk").values_list("pair_id", flat=True).first()


def pair_score_edit(*, pair: PreferencePair, chosen: str) -> dict | None:
    """The checker's verdict on prefix + an edited chosen fragment, nothing written; None when the query
    has no ground truth (execution reward only)."""
    if pair.query.ground_truth is None:
        return None
    tools = pair.query.openai_tools()
    return check(pair.prefix + chosen, pair.query.ground_truth, tools).as_dict()


# --- dashboard: read from the running counts (models.PairCount), a bounded number of rows ----------------


def project_review_progress(*, project: Project) -> dict:
    """Pairs by status and by deficiency × status, and the share reviewed (1 query over the project's
    counts: rounds × deficiencies × statuses rows, whatever the number of pairs)."""
    by_status: dict[str, int] = {}
    deficiency_rows: dict[str, dict] = {}
    for deficiency, status, n in (
        PairCount.objects.filter(project_id=project.pk)
        .values_list("deficiency", "status")
        .annotate(total=Sum("n"))
        .order_by()
        .values_list("deficiency", "status", "total")
    ):
        if not n:
            continue
        by_status[status] = by_status.get(status, 0) + n
        row = deficiency_rows.setdefault(deficiency or "none", {"deficiency": deficiency or "none", "total": 0})
        row[status] = n
        row["total"] += n
    total = sum(by_status.values())
    reviewed = sum(by_status.get(s, 0) for s in REVIEWED)
    return {
        "total": total,
        "reviewed": reviewed,
        "by_status": [(s, by_status.get(s, 0)) for s in PreferencePair.Status.values],
        "by_deficiency": sorted(deficiency_rows.values(), key=lambda r: (-r["total"], r["deficiency"])),
        "percent": round(100 * reviewed / total) if total else 0,
    }


def project_reviewers(*, project: Project) -> list[dict]:
    """Who reviewed what: per person, the count of each action they took (1 query over the project's
    counts: people × actions rows)."""
    people: dict[str, dict] = {}
    username = Subquery(get_user_model().objects.filter(pk=OuterRef("user_id")).values("username")[:1])
    for name, action, n in (
        ReviewerCount.objects.filter(project_id=project.pk)
        .exclude(n=0)
        .annotate(username=username)
        .values_list("username", "action", "n")
    ):
        name = name or "(deleted user)"
        person = people.setdefault(name, {"user": name, "total": 0})
        person[action] = person.get(action, 0) + n
        person["total"] += n
    return sorted(people.values(), key=lambda p: (-p["total"], p["user"]))


def project_rounds(*, project: Project) -> list[dict]:
    """The project's rounds with their state and pairs by status (2 queries)."""
    rounds = list(TrainingRound.objects.filter(project=project).order_by("number"))
    counts: dict[int, dict] = {}
    for round_id, status, n in (
        PairCount.objects.filter(project_id=project.pk, round_id__gt=0)
        .values_list("round_id", "status")
        .annotate(total=Sum("n"))
        .order_by()
        .values_list("round_id", "status", "total")
    ):
        if n:
            counts.setdefault(round_id, {})[status] = n
    out = []
    for training_round in rounds:
        pairs = counts.get(training_round.pk, {})
        total = sum(pairs.values())
        reviewed = sum(pairs.get(s, 0) for s in REVIEWED)
        out.append(
            {
                "round": training_round,
                "pairs": pairs,
                "total": total,
                "reviewed": reviewed,
                "percent": round(100 * reviewed / total) if total else 0,
            }
        )
    return out
