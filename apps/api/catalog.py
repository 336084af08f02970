"""Tools, queries and imports: read the catalog, add one query, upload a file for the importer."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.catalog.importers import FORMATS, get_importer
from apps.catalog.models import ImportJob, Query, QueryTool, Tool
from apps.catalog.records import RecordError
from apps.catalog.services import import_job_enqueue, import_jobs_reap, records_write
from apps.projects.permissions import ADMINS, project_with_role

from .fields import IdField, JSONObjectField
from .filters import ImportJobFilter, QueryFilter, ToolFilter
from .permissions import ProjectScopedMixin

# --- tools ---------------------------------------------------------------------------------------------


class ToolSerializer(serializers.ModelSerializer):
    parameters = JSONObjectField(read_only=True, help_text="JSON schema of the arguments (type object).")

    class Meta:
        model = Tool
        fields = [
            "id",
            "project",
            "name",
            "description",
            "parameters",
            "implementation",
            "schema_hash",
            "source",
            "created_at",
        ]
        read_only_fields = fields


class ToolViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    """The tools of your projects (OpenAI-style JSON schemas, with their Python implementation if any)."""

    queryset = Tool.objects.all()
    serializer_class = ToolSerializer
    filterset_class = ToolFilter


# --- queries -------------------------------------------------------------------------------------------


class QuerySerializer(serializers.ModelSerializer):
    messages = serializers.ListField(child=JSONObjectField(), read_only=True, help_text="OpenAI-style chat messages.")
    tools = serializers.SerializerMethodField(help_text="The offered tools in prompt order, in OpenAI form.")
    ground_truth = serializers.JSONField(
        read_only=True, allow_null=True, help_text="BFCL possible answers; [] = no call is right."
    )
    sub_answers = JSONObjectField(read_only=True)
    metadata = JSONObjectField(read_only=True)

    class Meta:
        model = Query
        fields = [
            "id",
            "project",
            "external_id",
            "source",
            "split",
            "kind",
            "difficulty",
            "difficulty_bucket",
            "messages",
            "tools",
            "ground_truth",
            "reference_output",
            "sub_answers",
            "final_answer",
            "metadata",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=JSONObjectField()))
    def get_tools(self, query: Query) -> list[dict]:
        return query.openai_tools()


class QueryCreateSerializer(serializers.Serializer):
    """One query in the `openai` import format (`{"messages", "tools", "expected"}`), stored as an import of
    that record would be: the same record posted again changes nothing."""

    project = IdField()
    split = serializers.ChoiceField(choices=Query.Split.choices, default=Query.Split.TRAIN)
    id = serializers.CharField(
        required=False, max_length=200, help_text="Stable id from your source (default: a hash of the record)."
    )
    messages = serializers.ListField(child=JSONObjectField(), allow_empty=False)
    tools = serializers.ListField(child=JSONObjectField(), help_text="OpenAI or BFCL function definitions.")
    expected = serializers.ListField(
        child=JSONObjectField(), help_text="The right tool calls (OpenAI `tool_calls` form); [] = no call is right."
    )
    kind = serializers.ChoiceField(
        choices=Query.Kind.choices, required=False, help_text="Default: from the expected calls."
    )


class QueryViewSet(ProjectScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Queries (prompts and their right answers); filter by project, split, kind and difficulty bucket."""

    queryset = Query.objects.prefetch_related(
        Prefetch("query_tools", queryset=QueryTool.objects.select_related("tool"))
    )
    serializer_class = QuerySerializer
    filterset_class = QueryFilter

    @extend_schema(
        request=QueryCreateSerializer,
        responses={201: QuerySerializer, 200: OpenApiResponse(QuerySerializer, "Already stored: unchanged.")},
    )
    def create(self, request, *args, **kwargs):
        """Add one query (project admins)."""
        data = QueryCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        project, _ = project_with_role(request.user, fields.pop("project"), *ADMINS)
        split = fields.pop("split")
        importer = get_importer("openai")
        try:
            records = importer.records_from(fields, 1)
            counts = records_write(project=project, records=records, source=importer.name, split=split)
        except RecordError as error:
            raise ValidationError({error.field: [error.message]}) from None
        query = self.get_queryset().get(project=project, external_id=records[0].external_id)
        return Response(
            QuerySerializer(query).data, status=status.HTTP_201_CREATED if counts.created else status.HTTP_200_OK
        )


# --- imports -------------------------------------------------------------------------------------------


class ImportJobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True, help_text="Progress (bytes read), 0–100.")
    counts = JSONObjectField(
        read_only=True, help_text="When done: records read, created, unchanged, tools created, by kind."
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "project",
            "format",
            "split",
            "original_name",
            "status",
            "percent",
            "progress_done",
            "progress_total",
            "counts",
            "error",
            "task_id",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ImportUploadSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS)
    split = serializers.ChoiceField(choices=Query.Split.choices, default=Query.Split.TRAIN)
    file = serializers.FileField(help_text="JSON Lines (or one JSON array) in the chosen format.")
    answers_file = serializers.FileField(required=False, help_text="bfcl only: the possible_answer file.")

    def validate(self, data):
        if data.get("answers_file") and data["format"] != "bfcl":
            raise ValidationError({"answers_file": ["An answer file goes with the bfcl format only."]})
        return data


class ImportJobViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Import jobs: status, progress (bytes read), counts when done, the reason when failed."""

    queryset = ImportJob.objects.select_related("created_by")
    serializer_class = ImportJobSerializer
    filterset_class = ImportJobFilter

    def list(self, request, *args, **kwargs):
        import_jobs_reap()  # a job whose worker died reads as failed with the reason, not running forever
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        import_jobs_reap()
        return super().retrieve(request, *args, **kwargs)


class ImportUploadView(GenericAPIView):
    """Upload a file to import into the project (project admins): a job is created and run by a worker with
    the same importer as `import_data` and the admin's upload; poll `GET /api/v1/imports/{id}/`."""

    parser_classes = [MultiPartParser, FormParser]
    serializer_class = ImportUploadSerializer
    pagination_class = None

    @extend_schema(
        operation_id="projects_imports_create",
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            202: ImportJobSerializer,
            413: OpenApiResponse(description="Larger than IMPORT_MAX_UPLOAD_BYTES: nothing stored."),
        },
    )
    def post(self, request, project_id: int):
        project, _ = project_with_role(request.user, project_id, *ADMINS)
        request.data  # noqa: B018 — parse the body now: the upload handler flags an oversized one before storing it
        if getattr(request, "upload_too_large", False):
            return Response(
                {
                    "detail": f"Upload refused: larger than the limit of {settings.IMPORT_MAX_UPLOAD_BYTES} "
                    "bytes (IMPORT_MAX_UPLOAD_BYTES). Nothing was stored; import big files with "
                    "`manage.py import_data` on the server."
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            upload = self.get_serializer(data=request.data)
            upload.is_valid(raise_exception=True)
            data = upload.validated_data
            job = ImportJob.objects.create(
                project=project,
                format=data["format"],
                split=data["split"],
                file=data["file"],
                answers_file=data.get("answers_file") or "",
                original_name=data["file"].name.rsplit("/", 1)[-1][:255],
                progress_total=data["file"].size,
                created_by=request.user,
            )
        finally:
            for upload_file in request.FILES.values():  # DRF parsed them itself: Django would not close them
                upload_file.close()
        transaction.on_commit(lambda: import_job_enqueue(job.pk))
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
