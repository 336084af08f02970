"""Reads of snapshots and of the pairs a snapshot freezes."""

from __future__ import annotations

from apps.curation.models import PreferencePair

from .models import DatasetSnapshot


def snapshot_selection(*, project, filters: dict):
    """The pairs a cleaned selection freezes, in the snapshot's stable order (by query, then pair id)."""
    pairs = PreferencePair.objects.filter(project=project, status__in=filters["status"])
    if "round" in filters:
        pairs = pairs.filter(round_id=filters["round"])
    if "deficiency" in filters:
        pairs = pairs.filter(deficiency__in=filters["deficiency"])
    if "min_gap" in filters:
        pairs = pairs.filter(gap__gte=filters["min_gap"])
    if "max_gap" in filters:
        pairs = pairs.filter(gap__lte=filters["max_gap"])
    if "kind" in filters:
        pairs = pairs.filter(query__kind__in=filters["kind"])
    return pairs.order_by("query_id", "id")


def snapshot_latest(*, project) -> DatasetSnapshot | None:
    """The project's most recently frozen snapshot."""
    return (
        DatasetSnapshot.objects.filter(project=project)
        .select_related("checkpoint")
        .order_by("-created_at", "-pk")
        .first()
    )
