"""Dataset snapshots: list and read them, freeze one from a round or a filter (project admins), stream one out
as JSON Lines in a training format, and have a worker write one to a Parquet file to download when ready."""

from __future__ import annotations

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.status import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_409_CONFLICT

from apps.datasets.models import DatasetSnapshot, SnapshotFile
from apps.datasets.rows import FORMATS, SPANS, check_format
from apps.datasets.services import (
    snapshot_export,
    snapshot_file_check,
    snapshot_file_request,
    snapshot_filters_clean,
    snapshot_freeze,
)
from apps.projects.permissions import ADMINS, project_with_role
from apps.training.models import Checkpoint, TrainingRound

from .fields import IdField, JSONObjectField
from .filters import SnapshotFilter
from .permissions import ProjectScopedMixin

NDJSON = "application/x-ndjson"
PARQUET = "application/vnd.apache.parquet"


class SnapshotSerializer(serializers.ModelSerializer):
    filters = JSONObjectField(read_only=True, help_text="How the pairs were chosen (normalised).")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = DatasetSnapshot
        fields = [
            "id",
            "project",
            "round",
            "name",
            "checkpoint",
            "content_hash",
            "pair_count",
            "filters",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class SnapshotCreateSerializer(serializers.Serializer):
    """Freeze the approved and edited pairs of a round, or of a selection, into an immutable snapshot."""

    project = IdField()
    round = IdField(required=False, allow_null=True, help_text="Freeze this round's reviewed pairs.")
    filters = JSONObjectField(
        required=False,
        help_text='Or a selection: {"status": [...], "round": id, '
        '"deficiency": [...], "min_gap": x, "max_gap": y, "kind": [...]}.',
    )
    name = serializers.CharField(required=False, max_length=200)
    checkpoint = IdField(
        required=False,
        allow_null=True,
        help_text="Whose chat template renders trl prompts (default: the round's policy, else the "
        "project's newest checkpoint).",
    )


class SnapshotFileSerializer(serializers.ModelSerializer):
    # a plain string: "kind" already names other enums (query and checkpoint kinds) in the schema
    kind = serializers.CharField(read_only=True, help_text="The file type: parquet.")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    download = serializers.SerializerMethodField(help_text="Where to download it once `status` is done (409 before).")

    class Meta:
        model = SnapshotFile
        fields = [
            "id",
            "snapshot",
            "format",
            "span",
            "kind",
            "status",
            "rows",
            "bytes",
            "sha256",
            "error",
            "download",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "rows": {"help_text": "Rows written: so far while running, all of them when done."},
            "sha256": {"help_text": "sha256 of the file's bytes (when done); also the download's ETag."},
        }

    def get_download(self, file: SnapshotFile) -> str:
        return reverse("api:snapshot-file-download", args=[file.pk])


class SnapshotFileNotReadySerializer(SnapshotFileSerializer):
    detail = serializers.CharField(help_text="Why there is nothing to download yet.")

    class Meta(SnapshotFileSerializer.Meta):
        fields = ["detail", *SnapshotFileSerializer.Meta.fields]
        read_only_fields = fields


class SnapshotFileCreateSerializer(serializers.Serializer):
    """Which file to make from the snapshot."""

    format = serializers.ChoiceField(choices=FORMATS, help_text="The rows' format, as in the JSON Lines export.")
    span = serializers.ChoiceField(
        choices=SPANS,
        default="fragment",
        help_text="trl only: the shared prefix in the prompt (fragment) or in both "
        "completions; ignored (fragment) for the other formats.",
    )


class IgnoreFormatParameter(DefaultContentNegotiation):
    """On the export, `?format=` names the export format, not a renderer: answer errors in JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


EXPORT_PARAMETERS = [
    OpenApiParameter(
        "format",
        str,
        enum=list(FORMATS),
        required=True,
        description="trl {prompt, chosen, rejected, metadata}; openai preference fine-tuning rows; "
        "sharegpt (iTool / LLaMA-Factory) rows.",
    ),
    OpenApiParameter(
        "span",
        str,
        enum=list(SPANS),
        default="fragment",
        description="trl only: the shared prefix in the prompt (fragment) or in both completions.",
    ),
    OpenApiParameter(
        "complete",
        bool,
        default=False,
        description="Complete each side that stops mid-answer by its best finished rollout in the "
        "search tree, so every chosen/rejected is a whole answer; rows that cannot be are "
        "left out (docs/exports.md).",
    ),
]


class SnapshotViewSet(ProjectScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Immutable, content-hashed copies of reviewed pairs: what a round trains on, and what you export."""

    queryset = DatasetSnapshot.objects.select_related("created_by")
    serializer_class = SnapshotSerializer
    filterset_class = SnapshotFilter
    ordering = ("-id",)  # newest first

    @extend_schema(
        request=SnapshotCreateSerializer,
        responses={
            201: SnapshotSerializer,
            200: OpenApiResponse(SnapshotSerializer, "The same content was frozen before: that snapshot."),
        },
    )
    def create(self, request, *args, **kwargs):
        """Freeze a snapshot (project admins)."""
        body = SnapshotCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        project, _ = project_with_role(request.user, data["project"], *ADMINS)
        rnd = checkpoint = None
        if data.get("round") is not None:
            rnd = TrainingRound.objects.filter(pk=data["round"], project=project).select_related("policy_in").first()
            if rnd is None:
                raise ValidationError({"round": [f"No round #{data['round']} in project {project.name}."]})
        if data.get("checkpoint") is not None:
            checkpoint = Checkpoint.objects.filter(pk=data["checkpoint"], project=project).first()
            if checkpoint is None:
                raise ValidationError(
                    {"checkpoint": [f"No checkpoint #{data['checkpoint']} in project {project.name}."]}
                )
        try:
            snapshot_filters_clean(project=project, filters=data.get("filters"), round=rnd)
        except ValueError as error:
            raise ValidationError({"filters": [str(error)]}) from None
        started = timezone.now()
        try:
            snapshot = snapshot_freeze(
                project=project,
                round=rnd,
                filters=data.get("filters"),
                name=data.get("name"),
                created_by=request.user,
                checkpoint=checkpoint,
            )
        except ValueError as error:  # nothing to freeze, or a checkpoint that does not fit the round
            raise ValidationError({"non_field_errors": [str(error)]}) from None
        snapshot = self.queryset.get(pk=snapshot.pk)
        created = snapshot.created_at >= started
        return Response(SnapshotSerializer(snapshot).data, status=HTTP_201_CREATED if created else HTTP_200_OK)

    @extend_schema(
        parameters=EXPORT_PARAMETERS,
        responses={
            (200, NDJSON): OpenApiResponse(
                OpenApiTypes.STR,
                "JSON Lines, one row per pair, the same bytes every "
                "time. Headers: X-Content-Hash (the snapshot's "
                "content_hash), ETag, Content-Disposition.",
            ),
            304: OpenApiResponse(description="If-None-Match matched the ETag: unchanged."),
            400: OpenApiResponse(
                description="Unknown format or span, or a trl export of a snapshot without a checkpoint."
            ),
        },
    )
    @action(detail=True, methods=["get"], filter_backends=[], content_negotiation_class=IgnoreFormatParameter)
    def export(self, request, pk=None):
        """Stream the snapshot as JSON Lines."""
        snapshot = self.get_object()
        fmt = request.query_params.get("format", "")
        span = request.query_params.get("span", "fragment")
        try:
            check_format(fmt, span)
        except ValueError as error:
            raise ValidationError({"format" if fmt not in FORMATS else "span": [str(error)]}) from None
        complete = request.query_params.get("complete", "false").lower()
        if complete not in ("true", "false", "1", "0"):
            raise ValidationError({"complete": [f"expected true or false, got {complete!r}"]})
        complete = complete in ("true", "1")
        etag = f'"{snapshot.content_hash}-{fmt}-{span}{"-complete" if complete else ""}"'
        headers = {"ETag": etag, "X-Content-Hash": snapshot.content_hash}
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            return HttpResponse(status=304, headers=headers)
        try:
            lines = snapshot_export(snapshot, fmt, span, complete=complete)  # checks all before the first byte
        except (ValueError, OSError) as error:  # no checkpoint for trl, or its tokenizer cannot be read
            raise ValidationError({"format": [str(error)]}) from None
        name = (
            f"snapshot-{snapshot.pk}-{fmt}{'-' + span if fmt == 'trl' else ''}{'-complete' if complete else ''}.jsonl"
        )
        return StreamingHttpResponse(
            lines,
            content_type=NDJSON,
            headers={**headers, "Content-Disposition": content_disposition_header(as_attachment=True, filename=name)},
        )

    @extend_schema(methods=["GET"], responses={200: SnapshotFileSerializer(many=True)})
    @extend_schema(
        methods=["POST"],
        request=SnapshotFileCreateSerializer,
        responses={
            202: OpenApiResponse(
                SnapshotFileSerializer, "Being made (pending or running): poll `GET /api/v1/snapshot-files/{id}/`."
            ),
            200: OpenApiResponse(SnapshotFileSerializer, "Made before: ready to download."),
            400: OpenApiResponse(
                description="Unknown format or span, or a trl file of a snapshot without a checkpoint."
            ),
        },
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def files(self, request, pk=None):
        """The snapshot's Parquet files (GET); ask a worker to write one (POST, project admins).

        The rows are those of the JSON Lines export, one Parquet file per format (and trl span), written once:
        asking again returns the same file, unless it failed, which makes it again."""
        snapshot = self.get_object()
        if request.method == "GET":
            files = SnapshotFile.objects.filter(snapshot=snapshot).select_related("created_by")
            return Response(SnapshotFileSerializer(files, many=True).data)
        project_with_role(request.user, snapshot.project_id, *ADMINS)
        body = SnapshotFileCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            file = snapshot_file_request(
                snapshot=snapshot,
                fmt=body.validated_data["format"],
                span=body.validated_data["span"],
                created_by=request.user,
            )
        except ValueError as error:  # a trl file of a snapshot without a checkpoint
            raise ValidationError({"format": [str(error)]}) from None
        done = file.status == SnapshotFile.Status.DONE
        return Response(SnapshotFileSerializer(file).data, status=HTTP_200_OK if done else HTTP_202_ACCEPTED)


class SnapshotFileViewSet(ProjectScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A snapshot's file: its status while a worker makes it, then its size, rows and sha256, and the bytes."""

    queryset = SnapshotFile.objects.select_related("created_by", "snapshot")
    serializer_class = SnapshotFileSerializer
    project_field = "snapshot__project"
    filter_backends = []

    @extend_schema(
        responses={
            (200, PARQUET): OpenApiResponse(
                OpenApiTypes.BINARY, "The Parquet file. Headers: ETag (the sha256 of the bytes), Content-Disposition."
            ),
            409: OpenApiResponse(
                SnapshotFileNotReadySerializer,
                "Not ready: the file is pending or running, or failed "
                "(`error` says why; POST to the snapshot's files again).",
            ),
        }
    )
    @action(detail=True, methods=["get"], content_negotiation_class=IgnoreFormatParameter)
    def download(self, request, pk=None):
        """Download the file once it is done; 409 with its status until then."""
        file = snapshot_file_check(file=self.get_object())
        if file.status != SnapshotFile.Status.DONE:
            failed = file.status == SnapshotFile.Status.FAILED
            detail = f"The file failed: {file.error}" if failed else f"The file is not ready yet: it is {file.status}."
            return Response({"detail": detail, **SnapshotFileSerializer(file).data}, status=HTTP_409_CONFLICT)
        response = FileResponse(file.file.open("rb"), as_attachment=True, filename=file.filename, content_type=PARQUET)
        response["ETag"] = f'"{file.sha256}"'
        return response
