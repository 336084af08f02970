"""Writes to preference pairs: creating them from search trees, and the review actions on them."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.search.models import SearchTree, TreeNode
from rewards.checker import check

from .models import PairAssignment, PreferencePair, ReviewEvent
from .stats import pair_agreement_refresh


def pair_dedup_key(*, round_id: int | None, query_id: int, prefix: str, chosen: str, rejected: str) -> str:
    """The same pair (same round and query, same prefix and fragments) found twice is stored once."""
    text = f"{round_id}\x00{query_id}\x00{prefix}\x00{chosen}\x00{rejected}"
    return hashlib.sha256(text.encode()).hexdigest()


@transaction.atomic
def pairs_create_from_tree(*, tree: SearchTree, candidates: list) -> int:
    """Store a tree's pair candidates (workers.mcts.pairs.PairCandidate) as pending pairs; returns the
    number of new pairs (a candidate already stored is merged into it: nothing changes)."""
    keys = {k for c in candidates for k in (c.node_key, c.chosen_key, c.rejected_key)}
    ids = dict(TreeNode.objects.filter(tree=tree, key__in=keys).values_list("key", "id"))
    rows = []
    for c in candidates:
        rows.append(
            PreferencePair(
                project_id=tree.project_id,
                round_id=tree.round_id,
                query_id=tree.query_id,
                tree=tree,
                node_id=ids.get(c.node_key),
                chosen_node_id=ids.get(c.chosen_key),
                rejected_node_id=ids.get(c.rejected_key),
                prefix=c.prefix,
                chosen=c.chosen,
                rejected=c.rejected,
                prefix_ids=c.prefix_ids,
                chosen_ids=c.chosen_ids,
                rejected_ids=c.rejected_ids,
                chosen_value=c.chosen_value,
                rejected_value=c.rejected_value,
                chosen_visits=c.chosen_visits,
                rejected_visits=c.rejected_visits,
                gap=c.gap,
                deficiency=c.deficiency or "",
                chosen_verdict=c.chosen_verdict,
                rejected_verdict=c.rejected_verdict,
                dedup_key=pair_dedup_key(
                    round_id=tree.round_id,
                    query_id=tree.query_id,
                    prefix=c.prefix,
                    chosen=c.chosen,
                    rejected=c.rejected,
                ),
            )
        )
    before = PreferencePair.objects.filter(tree=tree).count()
    PreferencePair.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return PreferencePair.objects.filter(tree=tree).count() - before


# --- review actions: every write carries the version it read; a stale one changes nothing -------------

REVIEWED_FIELDS = (
    "status",
    "chosen",
    "rejected",
    "chosen_value",
    "rejected_value",
    "chosen_verdict",
    "rejected_verdict",
    "flag_note",
    "original_chosen",
    "deficiency",
    "chosen_ids",
    "rejected_ids",
)


class StaleVersion(Exception):
    """The pair changed since the caller read it; `current` is what it is now (nothing was written)."""

    def __init__(self, pair: PreferencePair, expected: int):
        super().__init__(f"pair #{pair.pk} is at version {pair.version}, not {expected}: someone else changed it")
        self.current, self.expected = pair, expected


def _snapshot(pair: PreferencePair) -> dict:
    return {name: getattr(pair, name) for name in REVIEWED_FIELDS}


def _review(
    *, pair_id: int, version: int, user, action: str, change, note: str = "", decision: bool = True
) -> PreferencePair:
    """Lock the pair, check the version, apply `change(pair)`, bump the version, record the event (and, with
    `decision`, the user's decision on their assignment)."""
    with transaction.atomic():
        pair = PreferencePair.objects.select_for_update().get(pk=pair_id)
        if pair.version != version:
            raise StaleVersion(pair, version)
        before = _snapshot(pair)
        change(pair)
        pair.version += 1
        pair.reviewed_by, pair.reviewed_at = user, timezone.now()
        if decision:
            _record_decision(pair, user, action)
        pair.save()
        after = _snapshot(pair)
        ReviewEvent.objects.create(
            pair=pair,
            user=user,
            action=action,
            version=pair.version,
            note=note,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
        )
        pair_agreement_refresh(pair)
        return pair


def pair_approve(*, pair_id: int, version: int, user) -> PreferencePair:
    return _review(
        pair_id=pair_id,
        version=version,
        user=user,
        action=ReviewEvent.Action.APPROVE,
        change=lambda p: setattr(p, "status", PreferencePair.Status.APPROVED),
    )


# The account automatic approvals (`run_round --auto-approve`, a round created with auto_approve) are recorded
# under, so the audit trail and the reviewers' figures say "(auto-approve)" rather than a person or "(deleted user)".
# Not a name a person can register (Django's username validator refuses parentheses); inactive, no usable password.
AUTO_REVIEWER = "(auto-approve)"


def auto_reviewer():
    """The automatic reviewer's account, made on first use."""
    user, created = get_user_model().objects.get_or_create(username=AUTO_REVIEWER, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def pair_auto_approve(*, pair_id: int, version: int, note: str, reviewer=None) -> PreferencePair:
    """Approve a pair without a person: the event is the automatic reviewer's, with `note` saying why (e.g.
    "run_round --auto-approve"). Not a person's decision: no assignment is recorded, so it counts in no agreement
    figure. `reviewer` is `auto_reviewer()` when the caller has it already."""
    return _review(
        pair_id=pair_id,
        version=version,
        user=reviewer or auto_reviewer(),
        action=ReviewEvent.Action.APPROVE,
        note=note,
        decision=False,
        change=lambda p: setattr(p, "status", PreferencePair.Status.APPROVED),
    )


def pair_reject(*, pair_id: int, version: int, user, note: str = "") -> PreferencePair:
    return _review(
        pair_id=pair_id,
        version=version,
        user=user,
        action=ReviewEvent.Action.REJECT,
        note=note,
        change=lambda p: setattr(p, "status", PreferencePair.Status.REJECTED),
    )


def pair_flag(*, pair_id: int, version: int, user, note: str) -> PreferencePair:
    if not note.strip():
        raise ValueError("a flag needs a note saying what is wrong")

    def change(p):
        p.status, p.flag_note = PreferencePair.Status.FLAGGED, note.strip()

    return _review(
        pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.FLAG, note=note, change=change
    )


def pair_swap(*, pair_id: int, version: int, user) -> PreferencePair:
    """Chosen becomes rejected and the reverse (values, verdicts, token ids and nodes too)."""

    def change(p):
        p.chosen, p.rejected = p.rejected, p.chosen
        p.chosen_ids, p.rejected_ids = p.rejected_ids, p.chosen_ids
        p.chosen_value, p.rejected_value = p.rejected_value, p.chosen_value
        p.chosen_visits, p.rejected_visits = p.rejected_visits, p.chosen_visits
        p.chosen_verdict, p.rejected_verdict = p.rejected_verdict, p.chosen_verdict
        p.chosen_node_id, p.rejected_node_id = p.rejected_node_id, p.chosen_node_id
        p.gap = p.chosen_value - p.rejected_value
        p.deficiency = (p.rejected_verdict or {}).get("deficiency", "") or ""

    return _review(pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.SWAP, change=change)


def pair_edit(*, pair_id: int, version: int, user, chosen: str) -> PreferencePair:
    """Correct the chosen fragment; the checker re-scores prefix + edit (the verdict is kept on the pair).

    The sampled chosen ids no longer spell the text, so they are dropped: training tokenises the edited text on
    its own after the pair's exact prompt + prefix ids (workers.train.preference), so no boundary merges."""
    if not chosen.strip():
        raise ValueError("the chosen fragment cannot be empty")

    def change(p):
        if not p.original_chosen:
            p.original_chosen = p.chosen
        if chosen != p.chosen:
            p.chosen_ids = None
        p.chosen = chosen
        tools = p.query.openai_tools()
        p.chosen_verdict = (
            check(p.prefix + chosen, p.query.ground_truth, tools).as_dict()
            if p.query.ground_truth is not None
            else None
        )
        p.status = PreferencePair.Status.EDITED

    return _review(pair_id=pair_id, version=version, user=user, action=ReviewEvent.Action.EDIT, change=change)


# --- assignment: leases, overlap, skip, undo, bulk ---------------------------------------------------

DECISIONS = ("approve", "reject", "edit", "swap", "flag")  # actions that count as a review decision


def _live_assignments(now):
    """Assignments that hold a pair: decided, or leased and not yet expired (a skip holds nothing)."""
    return Q(decision__in=DECISIONS) | Q(decision="", leased_until__gt=now)


def _record_decision(pair: PreferencePair, user, action: str) -> None:
    """Note the user's decision on their assignment; with overlap, disagreeing annotators send the pair
    to a reviewer (flagged)."""
    if user is None or action not in DECISIONS:
        return
    now = timezone.now()
    PairAssignment.objects.update_or_create(
        pair=pair, user=user, defaults={"decision": action, "decided_at": now, "leased_until": now}
    )
    if pair.project.review_overlap > 1 and action in ("approve", "reject"):
        votes = set(
            PairAssignment.objects.filter(pair=pair, decision__in=("approve", "reject")).values_list(
                "decision", flat=True
            )
        )
        if len(votes) > 1:
            pair.status = PreferencePair.Status.FLAGGED
            pair.flag_note = "annotators disagree: a reviewer decides"
    pair.assignee, pair.lease_expires_at = None, None


def pair_lease_next(*, project, user, round_id: int | None = None) -> PreferencePair | None:
    """The next pair for `user` to review, leased to them for the project's lease time: the one they
    already hold, else the pending pair with the smallest gap (most uncertain) that fewer than
    `review_overlap` people hold and they have not seen. Concurrent callers never get the same slot."""
    now = timezone.now()
    with transaction.atomic():
        held = (
            PairAssignment.objects.filter(
                pair__project=project,
                user=user,
                decision="",
                leased_until__gt=now,
                pair__status=PreferencePair.Status.PENDING,
            )
            .order_by("created_at")
            .values_list("pair_id", flat=True)
            .first()
        )
        if held:
            return PreferencePair.objects.get(pk=held)
        holders = Subquery(
            PairAssignment.objects.filter(_live_assignments(now), pair=OuterRef("pk"))
            .values("pair")
            .annotate(n=Count("id"))
            .values("n"),
            output_field=IntegerField(),
        )
        candidates = (
            PreferencePair.objects.filter(project=project, status=PreferencePair.Status.PENDING)
            .exclude(Exists(PairAssignment.objects.filter(pair=OuterRef("pk"), user=user)))
            .annotate(holders=Coalesce(holders, 0))
            .filter(holders__lt=project.review_overlap)
        )
        if round_id is not None:
            candidates = candidates.filter(round_id=round_id)
        passed: list[int] = []
        while True:
            pair = (
                candidates.exclude(pk__in=passed)
                .order_by("gap", "id")
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if pair is None:
                return None
            # The count above came from this statement's snapshot; someone may have leased the pair and
            # committed while we waited for its row. Count again now that we hold the row.
            if PairAssignment.objects.filter(_live_assignments(now), pair=pair).count() < project.review_overlap:
                break
            passed.append(pair.pk)
        until = now + timedelta(minutes=project.lease_minutes)
        PairAssignment.objects.update_or_create(pair=pair, user=user, defaults={"leased_until": until, "decision": ""})
        if project.review_overlap == 1:
            PreferencePair.objects.filter(pk=pair.pk).update(assignee=user, lease_expires_at=until)
            pair.assignee, pair.lease_expires_at = user, until
        return pair


def pair_skip(*, pair_id: int, user) -> None:
    """Give the pair back without deciding: others may take it, this user is not offered it again."""
    with transaction.atomic():
        pair = PreferencePair.objects.select_for_update().get(pk=pair_id)
        now = timezone.now()
        PairAssignment.objects.update_or_create(
            pair=pair, user=user, defaults={"decision": "skip", "decided_at": now, "leased_until": now}
        )
        if pair.assignee_id == getattr(user, "pk", None):
            PreferencePair.objects.filter(pk=pair.pk).update(assignee=None, lease_expires_at=None)
        ReviewEvent.objects.create(pair=pair, user=user, action=ReviewEvent.Action.SKIP, version=pair.version)
        pair_agreement_refresh(pair)  # skipping a pair you decided takes your decision back


def pair_undo(*, pair_id: int, version: int, user) -> PreferencePair:
    """Revert the user's last change on the pair, if nobody has changed the pair since."""
    with transaction.atomic():
        pair = PreferencePair.objects.select_for_update().get(pk=pair_id)
        if pair.version != version:
            raise StaleVersion(pair, version)
        last = (
            ReviewEvent.objects.filter(pair=pair)
            .exclude(action=ReviewEvent.Action.SKIP)
            .order_by("-created_at", "-pk")
            .first()
        )
        if last is None or last.action == ReviewEvent.Action.UNDO or last.version != pair.version:
            raise ValueError("nothing to undo on this pair")
        if last.user_id != getattr(user, "pk", None):
            raise ValueError("the last change on this pair is someone else's: only they can undo it")
        before = _snapshot(pair)
        for name, value in last.before.items():
            setattr(pair, name, value)
        if last.action == ReviewEvent.Action.SWAP:  # the nodes and visits swap back too
            pair.chosen_node_id, pair.rejected_node_id = pair.rejected_node_id, pair.chosen_node_id
            pair.chosen_visits, pair.rejected_visits = pair.rejected_visits, pair.chosen_visits
            pair.gap = pair.chosen_value - pair.rejected_value
        pair.version += 1
        pair.save()
        PairAssignment.objects.filter(pair=pair, user=user).update(
            decision="", decided_at=None, leased_until=timezone.now()
        )
        after = _snapshot(pair)
        ReviewEvent.objects.create(
            pair=pair,
            user=user,
            action=ReviewEvent.Action.UNDO,
            version=pair.version,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
            note=f"undo {last.action}",
        )
        pair_agreement_refresh(pair)
        return pair


def pair_bulk_review(*, pair_versions: dict[int, int], user, action: str) -> dict:
    """Approve or reject many pairs, each at the version the caller saw; stale ones are left alone."""
    review = {"approve": pair_approve, "reject": pair_reject}.get(action)
    if review is None:
        raise ValueError(f"bulk action must be approve or reject, got {action!r}")
    done, stale = [], []
    for pair_id, version in pair_versions.items():
        try:
            review(pair_id=pair_id, version=version, user=user)
            done.append(pair_id)
        except StaleVersion:
            stale.append(pair_id)
    return {"done": done, "stale": stale}
