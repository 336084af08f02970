"""The review actions a pair page offers: each one's service call, keyboard key, and what the page does after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import services


@dataclass(frozen=True)
class ReviewAction:
    name: str
    label: str
    key: str  # the one keyboard key that triggers it
    run: Callable[..., object]  # (pair_id, version, user, data) → the service's result
    decides: bool = True  # changes the pair's review: needs permission to act on this pair
    stays: bool = False  # afterwards the page shows the same pair again instead of the next
    needs_version: bool = True


ACTIONS: dict[str, ReviewAction] = {
    a.name: a
    for a in (
        ReviewAction(
            "approve",
            "Approve",
            "a",
            lambda pair_id, version, user, data: services.pair_approve(pair_id=pair_id, version=version, user=user),
        ),
        ReviewAction(
            "reject",
            "Reject",
            "r",
            lambda pair_id, version, user, data: services.pair_reject(
                pair_id=pair_id, version=version, user=user, note=data.get("note", "")
            ),
        ),
        ReviewAction(
            "edit",
            "Edit chosen",
            "e",
            lambda pair_id, version, user, data: services.pair_edit(
                pair_id=pair_id, version=version, user=user, chosen=data.get("chosen", "")
            ),
        ),
        ReviewAction(
            "swap",
            "Swap",
            "s",
            lambda pair_id, version, user, data: services.pair_swap(pair_id=pair_id, version=version, user=user),
            stays=True,
        ),
        ReviewAction(
            "flag",
            "Flag",
            "f",
            lambda pair_id, version, user, data: services.pair_flag(
                pair_id=pair_id, version=version, user=user, note=data.get("note", "")
            ),
        ),
        ReviewAction(
            "skip",
            "Skip",
            "k",
            lambda pair_id, version, user, data: services.pair_skip(pair_id=pair_id, user=user),
            decides=False,
            needs_version=False,
        ),
        # The service lets people undo only their own last change, so any member may ask.
        ReviewAction(
            "undo",
            "Undo my last change",
            "u",
            lambda pair_id, version, user, data: services.pair_undo(pair_id=pair_id, version=version, user=user),
            decides=False,
            stays=True,
        ),
    )
}

# Keys that are not actions, for the `?` help.
NAVIGATION_KEYS = (
    ("j / n / →", "next pair"),
    ("p / ←", "previous pair"),
    ("t", "open the search tree"),
    ("h", "pair history"),
    ("Ctrl+Enter", "save an edit"),
    ("Esc", "close the editor or a dialog"),
    ("?", "show these keys"),
)
