"""The review queues people walk: pending pairs leased one at a time, or the pairs awaiting a reviewer."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import QueryDict

from itool_web.validation import parse_id

from . import selectors, services
from .models import PreferencePair

PENDING, ADJUDICATE = "pending", "adjudicate"


@dataclass(frozen=True)
class ReviewQueue:
    kind: str = PENDING
    round_id: int | None = None

    @classmethod
    def from_params(cls, params: QueryDict) -> ReviewQueue:
        """Read `queue` and `round` from GET or POST data; unknown or malformed values fall back to defaults."""
        kind = ADJUDICATE if params.get("queue") == ADJUDICATE else PENDING
        return cls(kind, parse_id(params.get("round", "")))

    @property
    def query_string(self) -> str:
        """`?queue=…&round=…` to carry the queue from page to page ('' for the default queue)."""
        params = {}
        if self.kind != PENDING:
            params["queue"] = self.kind
        if self.round_id is not None:
            params["round"] = self.round_id
        return f"?{urlencode(params)}" if params else ""

    def take_next(self, *, project, user, current_pair_id: int | None = None) -> int | None:
        """The pair to show next; pending pairs are leased to the user (a write)."""
        if self.kind == ADJUDICATE:
            return selectors.pair_next_for_adjudication(project=project, exclude_pair_id=current_pair_id)
        pair: PreferencePair | None = services.pair_lease_next(project=project, user=user, round_id=self.round_id)
        return pair.pk if pair else None

    def peek_next(self, *, project, user, current_pair_id: int) -> int | None:
        """The pair `take_next` will most likely give after this one (to preload it; no write)."""
        if self.kind == ADJUDICATE:
            return selectors.pair_next_for_adjudication(project=project, exclude_pair_id=current_pair_id)
        return selectors.pair_peek_next(
            project=project, user=user, exclude_pair_id=current_pair_id, round_id=self.round_id
        )
