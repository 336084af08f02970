"""Input forms of the review pages: the bulk view's filters, a review action's fields, and the selected pairs of
a bulk action. Their bounds are the REST API's (itool_web.validation): the two refuse the same input."""

from __future__ import annotations

from django import forms

from itool_web.validation import MAX_FRAGMENT_CHARS, MAX_VERSION, parse_id, parse_version
from rewards.deficiency import DEFICIENCY_CHOICES

from .models import PreferencePair
from .selectors import SORTS, PairFilters

BULK_ACTIONS = ("approve", "reject")
BULK_MAX_PAIRS = 500  # one request; the page shows 50 rows, "select all" stays well under this


class PairFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *PreferencePair.Status.choices])
    round = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    deficiency = forms.ChoiceField(required=False, choices=[("", "any deficiency"), *DEFICIENCY_CHOICES[1:]])
    tool = forms.ChoiceField(required=False)
    gap_min = forms.FloatField(required=False, label="gap ≥")
    gap_max = forms.FloatField(required=False, label="gap ≤")
    q = forms.CharField(required=False, max_length=200, label="text")
    mine = forms.BooleanField(required=False, label="assigned to me")
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("uncertainty", "uncertainty (smallest gap first)"),
            ("gap", "largest gap first"),
            ("newest", "newest first"),
        ],
    )

    def __init__(self, *args, rounds: list[tuple[int, int]], tools: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["round"].choices = [("", "any round"), *[(pk, f"round {number}") for pk, number in rounds]]
        self.fields["tool"].choices = [("", "any tool"), *[(name, name) for name in tools]]

    def filters(self) -> PairFilters:
        """The valid filters (an invalid field is reported on the page and ignored)."""
        self.is_valid()
        data = self.cleaned_data
        sort = data.get("sort") or "uncertainty"
        return PairFilters(
            status=data.get("status") or "",
            round_id=data.get("round"),
            deficiency=data.get("deficiency") or "",
            tool=data.get("tool") or "",
            gap_min=data.get("gap_min"),
            gap_max=data.get("gap_max"),
            text=(data.get("q") or "").strip(),
            assigned_to_me=True if data.get("mine") else None,
            sort=sort if sort in SORTS else "uncertainty",
        )


_VERSION_MESSAGE = f"send the version of the pair you read (a whole number from 1 to {MAX_VERSION})"


# The text each review action reads besides the version (as the REST API's bodies: apps/api/curation.py).
ACTION_TEXT_FIELDS = {"reject": ("note",), "flag": ("note",), "edit": ("chosen",)}


class ReviewInputForm(forms.Form):
    """The fields of a review action posted from a pair's page: the version read, and the text of an edit or a
    note (no NUL characters: the database cannot store them; Django's CharField refuses them, as DRF's does).
    Only the fields the action reads are checked: what it ignores, the API ignores too."""

    version = forms.IntegerField(
        min_value=1,
        max_value=MAX_VERSION,
        error_messages={key: _VERSION_MESSAGE for key in ("required", "invalid", "min_value", "max_value")},
    )
    chosen = forms.CharField(required=False, strip=False, max_length=MAX_FRAGMENT_CHARS)
    note = forms.CharField(required=False, strip=False, max_length=MAX_FRAGMENT_CHARS)

    def __init__(self, *args, needs_version: bool = True, text_fields: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("chosen", "note"):
            if name not in text_fields:
                del self.fields[name]
        if not needs_version:
            del self.fields["version"]

    @classmethod
    def for_action(cls, data, action) -> ReviewInputForm:
        return cls(data, needs_version=action.needs_version, text_fields=ACTION_TEXT_FIELDS.get(action.name, ()))

    def error_message(self) -> str:
        """The errors as one line for the 400 page or the JSON answer: `field: message; …`."""
        return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in self.errors.items())


def parse_bulk_selection(post) -> tuple[str, dict[int, int]]:
    """(action, {pair id: version read}) from a bulk form: `action` and `pair` values "id:version".
    Raises ValueError with a message for the 400 page."""
    action = post.get("action", "")
    if action not in BULK_ACTIONS:
        raise ValueError(f"bulk action must be one of {', '.join(BULK_ACTIONS)}")
    selected: dict[int, int] = {}
    for value in post.getlist("pair"):
        raw_id, _, raw_version = value.partition(":")
        pair_id, version = parse_id(raw_id), parse_version(raw_version)
        if pair_id is None or version is None:
            raise ValueError(f"bad pair selection {value[:40]!r}: expected id:version (whole numbers)")
        selected[pair_id] = version
    if not selected:
        raise ValueError("select at least one pair")
    if len(selected) > BULK_MAX_PAIRS:
        raise ValueError(f"at most {BULK_MAX_PAIRS} pairs at once")
    return action, selected
