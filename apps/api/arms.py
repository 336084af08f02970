"""Arm runs: list a round's controlled comparisons (any member), launch arms from its input policy (project admins)."""

from __future__ import annotations

import django_filters as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.status import HTTP_202_ACCEPTED, HTTP_409_CONFLICT

from apps.arms.data import TRAINED_ARMS
from apps.arms.models import ArmRun
from apps.arms.services import MAX_SEEDS, ArmsRefused, arms_launch
from apps.projects.permissions import ADMINS, project_with_role
from apps.training.models import TrainingRound

from .fields import IdField, JSONObjectField
from .filters import IdFilter, StrictFilterSet
from .permissions import ProjectScopedMixin, visible


class ArmRunFilter(StrictFilterSet):
    round = IdFilter(field_name="round_id", help_text="Only the runs of this round (its id).")
    arm = filters.ChoiceFilter(choices=ArmRun.Arm.choices)
    status = filters.ChoiceFilter(choices=ArmRun.Status.choices)

    class Meta:
        model = ArmRun
        fields = ["round", "arm", "status"]


class ArmRunSerializer(serializers.ModelSerializer):
    budget = JSONObjectField(read_only=True, help_text="Optimizer steps × batch, examples, how the data was fitted.")
    metrics = JSONObjectField(read_only=True, help_text='{"train": summary, "eval": the EvalRun\'s figures}.')
    progress = JSONObjectField(read_only=True, help_text="Stage, step, loss while running.")

    class Meta:
        model = ArmRun
        fields = [
            "id",
            "round",
            "arm",
            "seed",
            "status",
            "checkpoint",
            "eval_run",
            "budget",
            "metrics",
            "progress",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ArmsLaunchSerializer(serializers.Serializer):
    round = IdField(help_text="The round whose input policy and budget the arms use.")
    arms = serializers.ListField(
        child=serializers.ChoiceField(choices=list(TRAINED_ARMS)),
        required=False,
        allow_empty=False,
        max_length=len(TRAINED_ARMS),
        help_text="Default: all six.",
    )
    seeds = serializers.IntegerField(default=1, min_value=1, max_value=MAX_SEEDS, help_text="Seeds per arm.")


class ArmsRefusedSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why the arms cannot run (no data, no budget, input checkpoint gone).")


class ArmRunViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Controlled comparisons: each arm trained from a round's input policy at the round's budget, one row per
    (round, arm, seed); the arm `input` is the untrained input policy, the baseline."""

    queryset = ArmRun.objects.all()
    serializer_class = ArmRunSerializer
    filterset_class = ArmRunFilter
    project_field = "round__project"

    @extend_schema(
        request=ArmsLaunchSerializer,
        responses={
            202: OpenApiResponse(ArmRunSerializer(many=True), "The runs sent to the workers (finished ones skipped)."),
            403: OpenApiResponse(description="Needs the admin role in the round's project."),
            409: OpenApiResponse(ArmsRefusedSerializer, "Refused; nothing was written."),
        },
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def launch(self, request):
        """Launch arms of a round (project admins), as the arms page does."""
        body = ArmsLaunchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        rnd = visible(TrainingRound.objects.all(), request.user).filter(pk=data["round"]).first()
        if rnd is None:
            raise NotFound("No such round.")
        project_with_role(request.user, rnd.project_id, *ADMINS)
        try:
            rows = arms_launch(round=rnd, arms=data.get("arms"), seeds=data["seeds"], user=request.user)
        except ArmsRefused as refused:
            return Response({"detail": str(refused)}, status=HTTP_409_CONFLICT)
        return Response(ArmRunSerializer(rows, many=True).data, status=HTTP_202_ACCEPTED)
