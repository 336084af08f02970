"""Query-string filters of the API's lists (django-filter); the pairs' are the bulk review page's, by name.

A malformed value (a word for a number, an unknown status) answers 400 naming the parameter.
"""

from __future__ import annotations

import django_filters as filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from apps.catalog.models import ImportJob, Query, Tool
from apps.curation.models import PreferencePair, ReviewEvent
from apps.curation.selectors import PairFilters, pairs_filtered
from apps.datasets.models import DatasetSnapshot
from apps.search.models import SearchTree, TreeNode
from apps.training.models import Checkpoint, TrainingRound
from rewards.deficiency import DEFICIENCY_CHOICES

from .fields import MAX_ID


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(filters.NumberFilter):
    """A whole number (NumberFilter's own field takes decimals)."""

    field_class = forms.IntegerField


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(IntegerFilter):
    """An id: a whole number in the database's range (so a huge one is a 400, not a database error)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class StrictBooleanField(forms.NullBooleanField):
    """true / false (or 1 / 0); anything else is an error, not "no filter"."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in ("true", "True", "1", True):
            return True
        if value in ("false", "False", "0", False):
            return False
        raise forms.ValidationError("Expected true or false.", code="invalid")

    def validate(self, value):
        pass


@extend_schema_field(OpenApiTypes.BOOL)
class BooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.TextInput)  # the default select widget reads junk as "unset"
        super().__init__(*args, **kwargs)


class StrictFilterSet(filters.FilterSet):
    """A parameter given empty (`?status=`) is a 400: in an API it is a mistake, not "any status"."""

    def get_form_class(self):
        # django-filter builds the form class, and a form field per filter, on every request; none of these
        # filters depends on the request, so the class is built once per filter set (~0.3 ms a list request).
        form_class = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            type(self)._form_class = form_class
        return form_class

    def is_valid(self):
        valid = super().is_valid()
        for name in self.filters:
            if self.data.get(name) == "":
                self.form.add_error(name, "Empty: leave the parameter out not to filter by it.")
                valid = False
        return valid


class ProjectFilterSet(StrictFilterSet):
    project = IdFilter(field_name="project_id", help_text="Only rows of this project.")


class ToolFilter(ProjectFilterSet):
    name = filters.CharFilter(max_length=255)

    class Meta:
        model = Tool
        fields = ["project", "name"]


class QueryFilter(ProjectFilterSet):
    split = filters.ChoiceFilter(choices=Query.Split.choices)
    kind = filters.ChoiceFilter(choices=Query.Kind.choices)
    difficulty = filters.ChoiceFilter(
        field_name="difficulty_bucket", choices=Query.Bucket.choices, help_text="The warm-up curriculum's bucket."
    )
    source = filters.CharFilter(max_length=32)
    external_id = filters.CharFilter(max_length=255)

    class Meta:
        model = Query
        fields = ["project", "split", "kind", "difficulty", "source", "external_id"]


class ImportJobFilter(ProjectFilterSet):
    status = filters.ChoiceFilter(choices=ImportJob.Status.choices)

    class Meta:
        model = ImportJob
        fields = ["project", "status"]


class TreeFilter(ProjectFilterSet):
    round = IdFilter(field_name="round_id")
    query = IdFilter(field_name="query_id")
    status = filters.ChoiceFilter(choices=SearchTree.Status.choices)

    class Meta:
        model = SearchTree
        fields = ["project", "round", "query", "status"]


class NodeFilter(StrictFilterSet):
    depth = IntegerFilter(min_value=0, max_value=32767)
    parent = IdFilter(field_name="parent_id", help_text="Children of this node.")
    is_terminal = BooleanFilter()

    class Meta:
        model = TreeNode
        fields = ["depth", "parent", "is_terminal"]


class PairFilter(ProjectFilterSet):
    """The bulk review page's filters (apps.curation.forms.PairFilterForm), the same names and meanings: the
    parameters are validated here and applied by the page's own selector (`apps.curation.selectors.pairs_filtered`)."""

    status = filters.ChoiceFilter(choices=PreferencePair.Status.choices)
    round = IdFilter(field_name="round_id")
    query = IdFilter(field_name="query_id")
    deficiency = filters.ChoiceFilter(choices=DEFICIENCY_CHOICES[1:])
    tool = filters.CharFilter(max_length=255, help_text="A tool offered with the query, by name.")
    gap_min = filters.NumberFilter(field_name="gap", help_text="gap ≥ this")
    gap_max = filters.NumberFilter(field_name="gap", help_text="gap ≤ this")
    q = filters.CharFilter(max_length=200, help_text="Text in the prefix or either fragment.")
    mine = BooleanFilter(help_text="Pairs assigned to me (leased to me); false: all others.")

    class Meta:
        model = PreferencePair
        fields = ["project", "status", "round", "query", "deficiency", "tool", "gap_min", "gap_max", "q", "mine"]

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        if data.get("project") is not None:
            queryset = queryset.filter(project_id=data["project"])

        def number(name):
            return None if data.get(name) is None else float(data[name])

        pair_filters = PairFilters(
            status=data.get("status") or "",
            round_id=data.get("round"),
            query_id=data.get("query"),
            deficiency=data.get("deficiency") or "",
            tool=data.get("tool") or "",
            gap_min=number("gap_min"),
            gap_max=number("gap_max"),
            text=data.get("q") or "",
            assigned_to_me=data.get("mine"),
        )
        return pairs_filtered(queryset, filters=pair_filters, user=self.request.user)


class EventFilter(StrictFilterSet):
    action = filters.ChoiceFilter(choices=ReviewEvent.Action.choices)

    class Meta:
        model = ReviewEvent
        fields = ["action"]


class CheckpointFilter(ProjectFilterSet):
    kind = filters.ChoiceFilter(choices=Checkpoint.Kind.choices)

    class Meta:
        model = Checkpoint
        fields = ["project", "kind"]


class RoundFilter(ProjectFilterSet):
    state = filters.ChoiceFilter(choices=TrainingRound.State.choices)
    algorithm = filters.ChoiceFilter(choices=TrainingRound.Algorithm.choices)

    class Meta:
        model = TrainingRound
        fields = ["project", "state", "algorithm"]


class SnapshotFilter(ProjectFilterSet):
    round = IdFilter(field_name="round_id")

    class Meta:
        model = DatasetSnapshot
        fields = ["project", "round"]
