"""Preference pairs: the filtered list, one pair, its history, and the review actions at the version read.

The actions are the review page's (`apps.curation.actions.ACTIONS`), with its rules: any member may act on a
pending pair, on one they reviewed last or hold; a reviewer or admin on any. A write carrying an older version
than the pair's changes nothing and answers 409 with the pair as it is now and the changes since.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import F
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.curation import selectors
from apps.curation.actions import ACTIONS
from apps.curation.models import PreferencePair, ReviewEvent
from apps.curation.services import StaleVersion
from apps.projects.permissions import MEMBERS, project_with_role, require_pair_action
from itool_web.validation import MAX_FRAGMENT_CHARS, MAX_VERSION

from .fields import JSONObjectField
from .filters import EventFilter, PairFilter
from .permissions import ProjectScopedMixin, visible

# --- output --------------------------------------------------------------------------------------------


_DATETIME = serializers.DateTimeField()


def _datetime(value, zone) -> str | None:
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in the current time zone, UTC as `Z`)."""
    if value is None:
        return None
    if zone is None or not timezone.is_aware(value):
        return _DATETIME.to_representation(value)  # the rare cases, as DRF handles them
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _username(pair: PreferencePair, relation: str) -> str | None:
    """The username of the pair's assignee or reviewer: annotated on the list's rows (`<relation>_username`, read
    in the page's query rather than a user row per pair), else from the user."""
    if f"{relation}_username" in pair.__dict__:
        return pair.__dict__[f"{relation}_username"]
    user = getattr(pair, relation)
    return None if user is None else user.username


class PairSerializer(serializers.ModelSerializer):
    """A pair as the list shows it. `to_representation` writes the fields straight off the row, the same values
    as ModelSerializer's field by field machinery (tests/api/test_pairs.py compares them): a page of 50–500
    pairs spent more time there than in its query."""

    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = PreferencePair
        fields = [
            "id",
            "project",
            "round",
            "query",
            "tree",
            "node",
            "chosen_node",
            "rejected_node",
            "status",
            "version",
            "prefix",
            "chosen",
            "rejected",
            "original_chosen",
            "chosen_value",
            "rejected_value",
            "chosen_visits",
            "rejected_visits",
            "gap",
            "deficiency",
            "flag_note",
            "assignee",
            "lease_expires_at",
            "reviewed_by",
            "reviewed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, pair: PreferencePair) -> dict:
        zone = timezone.get_current_timezone() if settings.USE_TZ else None
        return {
            "id": pair.pk,
            "project": pair.project_id,
            "round": pair.round_id,
            "query": pair.query_id,
            "tree": pair.tree_id,
            "node": pair.node_id,
            "chosen_node": pair.chosen_node_id,
            "rejected_node": pair.rejected_node_id,
            "status": pair.status,
            "version": int(pair.version),
            "prefix": pair.prefix,
            "chosen": pair.chosen,
            "rejected": pair.rejected,
            "original_chosen": pair.original_chosen,
            "chosen_value": float(pair.chosen_value),
            "rejected_value": float(pair.rejected_value),
            "chosen_visits": int(pair.chosen_visits),
            "rejected_visits": int(pair.rejected_visits),
            "gap": float(pair.gap),
            "deficiency": pair.deficiency,
            "flag_note": pair.flag_note,
            "assignee": _username(pair, "assignee"),
            "lease_expires_at": _datetime(pair.lease_expires_at, zone),
            "reviewed_by": _username(pair, "reviewed_by"),
            "reviewed_at": _datetime(pair.reviewed_at, zone),
            "created_at": _datetime(pair.created_at, zone),
            "updated_at": _datetime(pair.updated_at, zone),
        }


class PairDetailSerializer(PairSerializer):
    """A pair with the checker's verdicts on both branches (prefix + fragment)."""

    chosen_verdict = JSONObjectField(allow_null=True, read_only=True)
    rejected_verdict = JSONObjectField(allow_null=True, read_only=True)

    class Meta(PairSerializer.Meta):
        fields = [*PairSerializer.Meta.fields, "chosen_verdict", "rejected_verdict"]
        read_only_fields = fields

    def to_representation(self, pair: PreferencePair) -> dict:
        return serializers.ModelSerializer.to_representation(self, pair)  # one pair: the generic way


class EventSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    before = JSONObjectField(read_only=True, help_text="The fields this change altered, as they were.")
    after = JSONObjectField(read_only=True, help_text="The same fields after it.")

    class Meta:
        model = ReviewEvent
        fields = ["id", "pair", "user", "action", "version", "before", "after", "note", "created_at"]
        read_only_fields = fields


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    expected = serializers.IntegerField(help_text="The version you sent.")
    current = PairDetailSerializer(help_text="The pair as it is now: re-apply your change at its version.")
    events = EventSerializer(many=True, help_text="The changes made since your version.")


# --- input ---------------------------------------------------------------------------------------------


class VersionIn(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION, help_text="The pair's version you read.")


class RejectIn(VersionIn):
    note = serializers.CharField(required=False, allow_blank=True, max_length=MAX_FRAGMENT_CHARS)


class FlagIn(VersionIn):
    note = serializers.CharField(max_length=MAX_FRAGMENT_CHARS, help_text="What is wrong, for a reviewer.")


class EditIn(VersionIn):
    chosen = serializers.CharField(
        max_length=MAX_FRAGMENT_CHARS,
        trim_whitespace=False,
        help_text="The corrected chosen fragment (the checker re-scores prefix + it).",
    )

    def validate_chosen(self, value: str) -> str:
        if not value.strip():
            raise ValidationError("The chosen fragment cannot be empty.")
        return value


class NoBody(serializers.Serializer):
    pass


REVIEW_BODIES = {
    "approve": VersionIn,
    "reject": RejectIn,
    "flag": FlagIn,
    "edit": EditIn,
    "swap": VersionIn,
    "undo": VersionIn,
    "skip": NoBody,
}
REVIEW_HELP = {
    "approve": "Approve the pair.",
    "reject": "Reject the pair (an optional note says why).",
    "flag": "Flag the pair for a reviewer, with a note.",
    "edit": "Correct the chosen fragment: the pair becomes `edited` and its chosen verdict is re-scored.",
    "swap": "Swap chosen and rejected (values, visits, verdicts and nodes too).",
    "undo": "Revert your own last change on the pair, if nobody changed it since.",
    "skip": "Give the pair back without deciding: you will not be offered it again.",
}

# --- views ---------------------------------------------------------------------------------------------


def _review_schema(name: str):
    responses = {
        200: OpenApiResponse(PairDetailSerializer, "The pair after the change."),
        400: OpenApiResponse(
            description="A bad body, a version the pair does not have yet, or an action that "
            "cannot apply (e.g. nothing to undo)."
        ),
        403: OpenApiResponse(description="Your role may not change this pair (someone else reviewed it)."),
        404: OpenApiResponse(description="No such pair in your projects."),
    }
    if name != "skip":
        responses[409] = OpenApiResponse(ConflictSerializer, "Stale version: nothing was changed.")
    return extend_schema(summary=REVIEW_HELP[name], request=REVIEW_BODIES[name], responses=responses)


def _review_action(name: str):
    """The viewset method for one review action: POST /pairs/{id}/<name>/."""

    def review(self, request, pk=None):
        return self.apply_review(request, name)

    review.__name__ = review.__qualname__ = name  # DRF routes an action by its function's name
    return _review_schema(name)(action(detail=True, methods=["post"], url_path=name, filter_backends=[])(review))


SORT_PARAMETER = OpenApiParameter(
    "sort",
    str,
    enum=list(selectors.SORTS),
    default="uncertainty",
    description="uncertainty: smallest gap first (the review queue's order); gap: largest first; newest.",
)


@extend_schema_view(list=extend_schema(parameters=[SORT_PARAMETER]))
class PairViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Step-level preference pairs of your projects, with the bulk review page's filters."""

    queryset = PreferencePair.objects.select_related("assignee", "reviewed_by")
    filterset_class = PairFilter

    def get_serializer_class(self):
        return PairSerializer if self.action == "list" else PairDetailSerializer

    def base_queryset(self):
        if self.action == "list":  # no verdicts; of the people only their names (a user row each cost more)
            return PreferencePair.objects.defer("chosen_verdict", "rejected_verdict").annotate(
                assignee_username=F("assignee__username"), reviewed_by_username=F("reviewed_by__username")
            )
        return self.queryset.all()

    def pagination_ordering(self, request):
        sort = request.query_params.get("sort") or "uncertainty"
        if sort not in selectors.SORTS:
            raise ValidationError({"sort": [f"Expected one of {', '.join(selectors.SORTS)}."]})
        return selectors.SORTS[sort]

    def apply_review(self, request, name: str):
        review_action = ACTIONS[name]
        pair = self.get_object()
        _, role = project_with_role(request.user, pair.project_id, *MEMBERS)
        body = REVIEW_BODIES[name](data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = data.get("version")
        if review_action.needs_version and version > pair.version:
            raise ValidationError(
                {"version": [f"Pair #{pair.pk} has no version {version} yet (it is at {pair.version})."]}
            )
        if review_action.decides and version == pair.version:
            # An older version is refused by the service whatever the role (409): versions only grow.
            require_pair_action(user=request.user, role=role, pair=pair)
        try:
            review_action.run(pair.pk, version, request.user, data)
        except StaleVersion as stale:
            return self.conflict(stale)
        except ValueError as error:
            raise ValidationError({"non_field_errors": [str(error)]}) from None
        return Response(PairDetailSerializer(self.queryset.get(pk=pair.pk)).data)

    def conflict(self, stale: StaleVersion) -> Response:
        current = self.queryset.get(pk=stale.current.pk)
        events = selectors.pair_events(pair=current, after_version=stale.expected)
        return Response(
            {
                "detail": str(stale),
                "expected": stale.expected,
                "current": PairDetailSerializer(current).data,
                "events": EventSerializer(events, many=True).data,
            },
            status=status.HTTP_409_CONFLICT,
        )

    approve = _review_action("approve")
    reject = _review_action("reject")
    flag = _review_action("flag")
    edit = _review_action("edit")
    swap = _review_action("swap")
    undo = _review_action("undo")
    skip = _review_action("skip")


class PairEventList(generics.ListAPIView):
    """The pair's history: every change, who made it, the fields before and after; oldest first."""

    serializer_class = EventSerializer
    filterset_class = EventFilter
    ordering = ("created_at", "id")
    queryset = ReviewEvent.objects.none()  # for the schema; the real one is the pair's

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ReviewEvent.objects.none()
        pair = get_object_or_404(
            visible(PreferencePair.objects.only("pk", "project_id"), self.request.user), pk=self.kwargs["pair_id"]
        )
        return ReviewEvent.objects.filter(pair=pair).select_related("user")
