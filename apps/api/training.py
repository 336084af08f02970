"""Checkpoints and training rounds: read them, create a round (validated by the round form), launch, cancel or
resume it (project admins), poll its status; evaluation runs and each eval query's answer and verdicts."""

from __future__ import annotations

import json

import django_filters as filters
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.status import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_409_CONFLICT

from apps.catalog.models import Query
from apps.projects.permissions import ADMINS, project_with_role
from apps.training.forms import RoundForm
from apps.training.lifecycle import LaunchRefused, round_cancel, round_gate, round_launch, round_resume
from apps.training.models import Checkpoint, EvalResult, EvalRun, TrainingRound
from apps.training.selectors import eval_result_list
from apps.training.services import round_create
from apps.training.views import round_status
from rewards.deficiency import DEFICIENCY_CHOICES

from .fields import FiniteFloatField, IdField, JSONObjectField
from .filters import BooleanFilter, CheckpointFilter, IdFilter, ProjectFilterSet, RoundFilter, StrictFilterSet
from .permissions import ProjectScopedMixin, visible

A = TrainingRound.Algorithm
NEW_ROUND_ALGORITHMS = [c for c in A.choices if c[0] != A.SFT]  # round 0's SFT is made by `warmup`, not here


class CheckpointSerializer(serializers.ModelSerializer):
    config = JSONObjectField(read_only=True, help_text="How it was built or trained.")

    class Meta:
        model = Checkpoint
        fields = ["id", "project", "name", "path", "kind", "parent", "round", "config", "created_at"]
        read_only_fields = fields


class CheckpointViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Policies of your projects (a round's `policy` is one of these)."""

    queryset = Checkpoint.objects.all()
    serializer_class = CheckpointSerializer
    filterset_class = CheckpointFilter


# --- output --------------------------------------------------------------------------------------------


class RoundStatusSerializer(serializers.Serializer):
    """What the round page polls (`apps.training.views.round_status`)."""

    id = serializers.IntegerField()
    number = serializers.IntegerField()
    state = serializers.ChoiceField(choices=TrainingRound.State.choices)
    algorithm = serializers.ChoiceField(choices=A.choices)
    stage = serializers.CharField(allow_null=True, help_text="select, search, pair, train or evaluate.")
    progress = JSONObjectField(help_text="The stage's figures (counts, step, ...); the loss curve left out.")
    error = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(
        allow_null=True,
        help_text="Why the last stage gave nothing (no query selected, "
        "no pair from the search) and what to try; else null.",
    )
    finished = serializers.BooleanField()
    updated_at = serializers.DateTimeField()
    policy_in = serializers.IntegerField(allow_null=True)
    policy_out = serializers.IntegerField(allow_null=True)
    snapshot = serializers.IntegerField(allow_null=True)
    pass_rate = serializers.FloatField(allow_null=True, help_text="Eval pass@1 after the round.")
    pass_rate_before = serializers.FloatField(allow_null=True, help_text="Eval pass@1 of the input policy.")


class GateSerializer(serializers.Serializer):
    """The review gate (`apps.training.lifecycle.GateStatus`): may the round train now, and why."""

    ok = serializers.BooleanField()
    reason = serializers.CharField()
    total = serializers.IntegerField()
    pending = serializers.IntegerField()
    flagged = serializers.IntegerField()
    approved = serializers.IntegerField()
    edited = serializers.IntegerField()
    rejected = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    trainable = serializers.IntegerField(help_text="Approved + edited: what a snapshot would freeze.")


class RefusedSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why the round cannot do this now.")
    gate = GateSerializer(required=False, help_text="When the review gate refused a launch: its figures.")


class RoundSerializer(serializers.ModelSerializer):
    hyperparameters = JSONObjectField(read_only=True)
    selection = JSONObjectField(read_only=True)
    search_config = JSONObjectField(read_only=True)
    status = serializers.SerializerMethodField(help_text="State, stage and progress (as the round page polls).")

    class Meta:
        model = TrainingRound
        fields = [
            "id",
            "project",
            "number",
            "state",
            "algorithm",
            "gate",
            "gate_value",
            "hyperparameters",
            "selection",
            "search_config",
            "policy_in",
            "policy_out",
            "snapshot",
            "error",
            "status",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(RoundStatusSerializer)
    def get_status(self, rnd: TrainingRound) -> dict:
        return round_status(rnd)


class RoundDetailSerializer(RoundSerializer):
    metrics = JSONObjectField(read_only=True, help_text="Eval figures before and after the round.")
    review_gate = serializers.SerializerMethodField(help_text="The review gate as it stands.")

    class Meta(RoundSerializer.Meta):
        fields = [*RoundSerializer.Meta.fields, "metrics", "review_gate"]
        read_only_fields = fields

    @extend_schema_field(GateSerializer)
    def get_review_gate(self, rnd: TrainingRound) -> dict:
        return round_gate(rnd).as_dict()


# --- input ---------------------------------------------------------------------------------------------


class RoundCreateSerializer(serializers.Serializer):
    """A new draft round; the settings are checked by the same config classes the engines use."""

    project = IdField()
    algorithm = serializers.ChoiceField(choices=NEW_ROUND_ALGORITHMS, default=A.SIMPO)
    policy = IdField(
        required=False,
        allow_null=True,
        help_text="A checkpoint of the project. Default: the last round's output, else the newest.",
    )
    gate = serializers.ChoiceField(choices=TrainingRound.Gate.choices, default=TrainingRound.Gate.ALL_REVIEWED)
    gate_value = FiniteFloatField(
        default=1.0,
        min_value=0,
        max_value=1e12,
        help_text="Fraction (0–1] for fraction_reviewed; a count for min_approved.",
    )
    train = JSONObjectField(required=False, help_text='Overrides of the algorithm\'s defaults, e.g. {"beta": 2.5}.')
    selection = JSONObjectField(required=False, help_text='e.g. {"method": "perplexity", "ratio": 0.3}')
    search = JSONObjectField(required=False, help_text='MCTS settings, e.g. {"simulations": 5, "width": 3}')
    pairs = JSONObjectField(required=False, help_text='Pair filter, e.g. {"chosen_value_min": 0.5, "gap_min": 0.1}')
    eval_limit = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=2**31 - 1,
        help_text="Evaluate on the first N eval queries.",
    )
    auto_approve = serializers.BooleanField(
        default=False, help_text="Approve every pair without review and train at once."
    )


def form_errors(form) -> dict:
    """A Django form's errors as DRF's: field → messages, the form-wide ones under non_field_errors."""
    return {
        ("non_field_errors" if field == "__all__" else field): [e["message"] for e in errors]
        for field, errors in form.errors.get_json_data().items()
    }


def _refused(error: Exception) -> Response:
    body = {"detail": str(error)}
    gate = getattr(error, "gate", None)
    if gate is not None:
        body["gate"] = gate.as_dict()
    return Response(body, status=HTTP_409_CONFLICT)


def _lifecycle_schema(summary: str):
    return extend_schema(
        summary=summary,
        request=None,
        responses={
            202: OpenApiResponse(RoundStatusSerializer, "Done; the round's status."),
            403: OpenApiResponse(description="Needs the admin role in the round's project."),
            409: OpenApiResponse(RefusedSerializer, "Refused now (the reason, and the review gate's figures)."),
        },
    )


class RoundViewSet(ProjectScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Training rounds of your projects: one turn of select → search → pair → review → train → evaluate."""

    queryset = TrainingRound.objects.all()
    filterset_class = RoundFilter

    def get_serializer_class(self):
        return RoundSerializer if self.action == "list" else RoundDetailSerializer

    @extend_schema(request=RoundCreateSerializer, responses={201: RoundDetailSerializer})
    def create(self, request, *args, **kwargs):
        """Create a draft round (project admins), as the rounds page's form does."""
        body = RoundCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        project, _ = project_with_role(request.user, data["project"], *ADMINS)
        form = RoundForm(
            {
                "algorithm": data["algorithm"],
                "policy": data.get("policy") or "",
                "gate": data["gate"],
                "gate_value": data["gate_value"],
                "train": json.dumps(data.get("train", {})),
                "selection": json.dumps(data.get("selection", {})),
                "search": json.dumps(data.get("search", {})),
                "pairs": json.dumps(data.get("pairs", {})),
                "eval_limit": data.get("eval_limit") or "",
                "auto_approve": data["auto_approve"],
            },
            project=project,
        )
        if not form.is_valid():
            raise ValidationError(form_errors(form))
        cleaned = form.cleaned_data
        with transaction.atomic():
            rnd = round_create(
                project=project,
                algorithm=cleaned["algorithm"],
                policy=cleaned["policy"],
                created_by=request.user,
                **cleaned["parsed"],
            )
            rnd.gate, rnd.gate_value = cleaned["gate"], cleaned["gate_value"]
            rnd.save(update_fields=["gate", "gate_value", "updated_at"])
        return Response(RoundDetailSerializer(rnd).data, status=HTTP_201_CREATED)

    @extend_schema(responses=RoundStatusSerializer)
    @action(detail=True, methods=["get"], filter_backends=[])
    def status(self, request, pk=None):
        """The round's state, stage and progress (cheap enough to poll)."""
        return Response(round_status(self.get_object()))

    def lifecycle(self, request, run) -> Response:
        rnd = self.get_object()
        project_with_role(request.user, rnd.project_id, *ADMINS)
        try:
            rnd = run(round_id=rnd.pk, user=request.user)
        except (LaunchRefused, ValueError) as refused:  # InvalidTransition, or a snapshot that cannot be frozen
            return _refused(refused)
        return Response(round_status(rnd), status=HTTP_202_ACCEPTED)

    @_lifecycle_schema("Start a draft round, or train a reviewed one once its review gate holds.")
    @action(detail=True, methods=["post"], filter_backends=[])
    def launch(self, request, pk=None):
        return self.lifecycle(request, round_launch)

    @_lifecycle_schema("Cancel a round that is not finished; its data is kept.")
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request, pk=None):
        return self.lifecycle(request, round_cancel)

    @_lifecycle_schema("Run a failed round's failed stage again.")
    @action(detail=True, methods=["post"], filter_backends=[])
    def resume(self, request, pk=None):
        return self.lifecycle(request, round_resume)


# --- evaluation runs and their per-query results ---------------------------------------------------------


class EvalRunSerializer(serializers.ModelSerializer):
    metrics = JSONObjectField(
        read_only=True,
        help_text="pass_rate (strict), pass_rate_bfcl, over_refusal, by_kind, "
        "groups, deficiencies, ... (docs/evaluation.md).",
    )

    class Meta:
        model = EvalRun
        fields = [
            "id",
            "project",
            "checkpoint",
            "round",
            "split",
            "status",
            "n_queries",
            "metrics",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class EvalRunFilter(ProjectFilterSet):
    checkpoint = IdFilter(field_name="checkpoint_id")
    round = IdFilter(field_name="round_id")
    status = filters.ChoiceFilter(choices=EvalRun.Status.choices)

    class Meta:
        model = EvalRun
        fields = ["project", "checkpoint", "round", "status"]


class EvalRunViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Evaluation runs of your projects: a checkpoint scored on the eval split."""

    queryset = EvalRun.objects.all()
    serializer_class = EvalRunSerializer
    filterset_class = EvalRunFilter


class EvalResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalResult
        fields = [
            "id",
            "eval_run",
            "query",
            "kind",
            "output",
            "valid",
            "valid_bfcl",
            "deficiency",
            "detail",
            "reward",
            "expects_call",
        ]
        read_only_fields = fields


class EvalResultFilter(StrictFilterSet):
    kind = filters.ChoiceFilter(choices=Query.Kind.choices)
    deficiency = filters.ChoiceFilter(
        choices=[("none", "right answer"), *DEFICIENCY_CHOICES[1:]],
        method="filter_deficiency",
        help_text="The strict verdict; none = right.",
    )
    valid = BooleanFilter(help_text="Right by the strict rule.")

    class Meta:
        model = EvalResult
        fields = ["kind", "deficiency", "valid"]

    def filter_deficiency(self, queryset, name, value):
        return queryset.filter(deficiency="" if value == "none" else value)


class EvalResultList(generics.ListAPIView):
    """Each eval query's answer in the run and its verdicts (strict and BFCL-rule), in id order, a page at a time;
    filter by kind, deficiency and validity."""

    serializer_class = EvalResultSerializer
    filterset_class = EvalResultFilter
    queryset = EvalResult.objects.none()  # for the schema; the real one is the run's

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return EvalResult.objects.none()
        run = get_object_or_404(visible(EvalRun.objects.all(), self.request.user), pk=self.kwargs["eval_run_id"])
        return eval_result_list(eval_run=run)
