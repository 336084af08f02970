"""Freezing: reviewed pairs copied into an immutable snapshot, hashed as they are copied, with the selection
that chose them checked and normalised first."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.catalog.models import Query
from apps.curation.models import PreferencePair
from apps.training.models import Checkpoint, TrainingRound
from rewards.deficiency import Deficiency

from ..models import DatasetSnapshot, SnapshotPair
from ..selectors import snapshot_selection

FROZEN_STATUSES = (PreferencePair.Status.APPROVED.value, PreferencePair.Status.EDITED.value)
FILTER_KEYS = ("status", "round", "deficiency", "min_gap", "max_gap", "kind")
FREEZE_BATCH = 2000  # pairs read and inserted per round trip while freezing


# What a frozen row is made of, in hash order. The query's content hash is in it so that a query imported
# again with other content would not pass for the same data.
_FROZEN_FIELDS = (
    "query_id",
    "query__content_hash",
    "prefix",
    "chosen",
    "rejected",
    "deficiency",
    "gap",
    "status",
)  # after the pair's id


class _AlreadyFrozen(Exception):
    def __init__(self, snapshot: DatasetSnapshot):
        self.snapshot = snapshot


def _as_list(value, key: str) -> list:
    values = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"filter {key!r}: expected a value or a list of values, got {type(value).__name__}")
    return list(values)


def _choice_filter(filters: dict, key: str, allowed: Iterable[str]) -> list[str] | None:
    if key not in filters:
        return None
    allowed = list(allowed)
    values = _as_list(filters[key], key)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(
            f"filter {key!r}: unknown value(s) {bad or values!r}; expected some of "
            f"{', '.join(repr(a) for a in allowed)}"
        )
    return sorted(set(values))


def _number_filter(filters: dict, key: str) -> float | None:
    if key not in filters:
        return None
    value = filters[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"filter {key!r}: expected a finite number, got {value!r}")
    return float(value)


def _round_filter(*, project, filters: dict, round: TrainingRound | None) -> TrainingRound | None:
    round_id = filters.get("round")
    if round_id is not None:
        if isinstance(round_id, str) and round_id.isdigit():
            round_id = int(round_id)
        if isinstance(round_id, bool) or not isinstance(round_id, int):
            raise ValueError(f"filter 'round': expected a round id, got {round_id!r}")
    if round is not None:
        if round.project_id != project.pk:
            raise ValueError(f"round #{round.pk} belongs to another project than {project.name!r}")
        if round_id is not None and round_id != round.pk:
            raise ValueError(f"filter 'round' is #{round_id} but the snapshot is frozen for round #{round.pk}")
        return round
    if round_id is None:
        return None
    found = TrainingRound.objects.filter(pk=round_id, project=project).select_related("policy_in").first()
    if found is None:
        raise ValueError(f"filter 'round': no round #{round_id} in project {project.name!r}")
    return found


def snapshot_filters_clean(
    *, project, filters: dict | None = None, round: TrainingRound | None = None
) -> tuple[dict, TrainingRound | None]:
    """Validate a freeze selection; returns it normalised (as the snapshot records it) and the round it names.

    Keys: `status` (approved and/or edited; both by default), `round` (a round id), `deficiency` (one or
    several of the checker's labels, "" = none), `min_gap` / `max_gap` (value gap bounds), `kind` (query
    kinds). Unknown keys or values raise ValueError.
    """
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise ValueError(
            f"unknown snapshot filter(s) {', '.join(map(repr, unknown))}: expected some of {', '.join(FILTER_KEYS)}"
        )
    clean: dict = {
        "status": _choice_filter({"status": filters.get("status", list(FROZEN_STATUSES))}, "status", FROZEN_STATUSES)
    }
    rnd = _round_filter(project=project, filters=filters, round=round)
    if rnd is not None:
        clean["round"] = rnd.pk
    deficiency = _choice_filter(filters, "deficiency", [d.value for d in Deficiency])
    if deficiency is not None:
        clean["deficiency"] = deficiency
    for key in ("min_gap", "max_gap"):
        value = _number_filter(filters, key)
        if value is not None:
            clean[key] = value
    if clean.get("min_gap", -math.inf) > clean.get("max_gap", math.inf):
        raise ValueError(f"min_gap {clean['min_gap']} is above max_gap {clean['max_gap']}")
    kind = _choice_filter(filters, "kind", Query.Kind.values)
    if kind is not None:
        clean["kind"] = kind
    return clean, rnd


def _render_checkpoint(*, project, round: TrainingRound | None, checkpoint: Checkpoint | None) -> Checkpoint | None:
    """The policy whose chat template renders the prompts: the round's input policy (the one it trains),
    else the given checkpoint, else the project's latest."""
    if checkpoint is not None and checkpoint.project_id != project.pk:
        raise ValueError(f"checkpoint #{checkpoint.pk} belongs to another project than {project.name!r}")
    if round is not None and round.policy_in_id is not None:
        if checkpoint is not None and checkpoint.pk != round.policy_in_id:
            raise ValueError(
                f"round #{round.pk} trains checkpoint #{round.policy_in_id}: its prompts cannot be "
                f"rendered with checkpoint #{checkpoint.pk}"
            )
        return round.policy_in
    if checkpoint is not None:
        return checkpoint
    from apps.training.selectors import checkpoint_latest

    return checkpoint_latest(project=project)


def _content_hasher(checkpoint_id: int | None):
    """sha256 over a header naming the rendering checkpoint (another template is another dataset), then one
    canonical JSON line per frozen row in order."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"checkpoint": checkpoint_id}).encode() + b"\n")
    return digest


def _hash_row(digest, ordinal: int, values: tuple) -> None:
    digest.update(json.dumps([ordinal, *values], ensure_ascii=False).encode() + b"\n")


def snapshot_content_hash(snapshot: DatasetSnapshot) -> str:
    """The content hash recomputed from the stored rows: equal to `snapshot.content_hash` unless the rows
    were changed behind the models' back (or a frozen pair was deleted since: its id reads as null)."""
    digest = _content_hasher(snapshot.checkpoint_id)
    rows = (
        SnapshotPair.objects.filter(snapshot=snapshot)
        .order_by("ordinal")
        .values_list("ordinal", "pair_id", *_FROZEN_FIELDS, "chosen_ends", "rejected_ends")
        .iterator(chunk_size=FREEZE_BATCH)
    )
    for ordinal, *values in rows:
        _hash_row(digest, ordinal, tuple(values))
    return digest.hexdigest()


def snapshot_freeze(
    *,
    project,
    round: TrainingRound | None = None,
    filters: dict | None = None,
    name: str | None = None,
    created_by=None,
    checkpoint: Checkpoint | None = None,
) -> DatasetSnapshot:
    """Freeze the approved and edited pairs of `round` (or matching `filters`) into an immutable snapshot.

    The pairs' texts are copied in a stable order (query, then pair id) and hashed as they are copied, in one
    transaction that reads them in one statement: later edits to the pairs do not reach the snapshot. The
    same content (same rows, same rendering checkpoint) frozen again returns the existing snapshot. Raises
    ValueError on bad filters, a checkpoint that does not fit, or an empty selection.
    """
    clean, rnd = snapshot_filters_clean(project=project, filters=filters, round=round)
    ckpt = _render_checkpoint(project=project, round=rnd, checkpoint=checkpoint)
    pairs = snapshot_selection(project=project, filters=clean)
    empty = ValueError(f"no approved or edited pairs match {clean} in project {project.name!r}: nothing to freeze")
    if not pairs.exists():
        raise empty
    if name is None:
        name = f"round {rnd.number}" if rnd is not None else f"snapshot {timezone.now():%Y-%m-%d %H:%M:%S}"
    content_hash = None
    try:
        with transaction.atomic():
            # The hash is known only once every row is read, and the rows need the snapshot's id: insert
            # with a unique placeholder, then set the hash (a queryset update: the model refuses saves).
            snapshot = DatasetSnapshot.objects.create(
                project=project,
                round=rnd,
                checkpoint=ckpt,
                name=name,
                filters=clean,
                created_by=created_by,
                content_hash=f"freezing-{uuid.uuid4().hex}",
            )
            digest = _content_hasher(snapshot.checkpoint_id)
            batch: list[SnapshotPair] = []
            count = 0
            for values in pairs.values_list(
                "id",
                *_FROZEN_FIELDS,
                "chosen_node__is_terminal",
                "rejected_node__is_terminal",
                "prefix_ids",
                "chosen_ids",
                "rejected_ids",
            ).iterator(chunk_size=FREEZE_BATCH):
                *values, chosen_terminal, rejected_terminal, prefix_ids, chosen_ids, rejected_ids = values
                # no tree node (an imported or hand-made pair): the fragments are whole answers
                chosen_ends, rejected_ends = chosen_terminal is not False, rejected_terminal is not False
                pair_id, query_id, _, prefix, chosen, rejected, deficiency, gap, status = values
                _hash_row(digest, count, (*values, chosen_ends, rejected_ends))
                batch.append(
                    SnapshotPair(
                        snapshot=snapshot,
                        ordinal=count,
                        pair_id=pair_id,
                        query_id=query_id,
                        prefix=prefix,
                        chosen=chosen,
                        rejected=rejected,
                        deficiency=deficiency,
                        gap=gap,
                        status=status,
                        chosen_ends=chosen_ends,
                        rejected_ends=rejected_ends,
                        prefix_ids=prefix_ids,
                        chosen_ids=chosen_ids,
                        rejected_ids=rejected_ids,
                    )
                )
                count += 1
                if len(batch) >= FREEZE_BATCH:
                    SnapshotPair.objects.bulk_create(batch)
                    batch = []
            SnapshotPair.objects.bulk_create(batch)
            if count == 0:  # everything was un-approved between the check above and the read
                raise empty
            content_hash = digest.hexdigest()
            existing = DatasetSnapshot.objects.filter(project=project, content_hash=content_hash).first()
            if existing is not None:
                raise _AlreadyFrozen(existing)  # rolls back this copy
            DatasetSnapshot.objects.filter(pk=snapshot.pk).update(content_hash=content_hash, pair_count=count)
    except _AlreadyFrozen as already:
        return already.snapshot
    except IntegrityError:
        # A concurrent freeze of the same content committed first: the unique (project, content_hash) says so.
        existing = content_hash and DatasetSnapshot.objects.filter(project=project, content_hash=content_hash).first()
        if not existing:
            raise
        return existing
    snapshot.content_hash, snapshot.pair_count = content_hash, count
    return snapshot
