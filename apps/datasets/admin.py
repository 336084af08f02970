"""Admin for snapshots: read-only, since a snapshot never changes once frozen; its Parquet files are listed on
its page and made by an action."""

from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from .models import DatasetSnapshot, SnapshotFile, SnapshotPair
from .rows import FORMATS
from .services import snapshot_file_request


class SnapshotFileInline(admin.TabularInline):
    model = SnapshotFile
    fields = ["format", "span", "kind", "status", "rows", "size", "short_sha256", "error", "finished_at", "download"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="size")
    def size(self, obj):
        return filesizeformat(obj.bytes) if obj.status == SnapshotFile.Status.DONE else "–"

    @admin.display(description="sha256")
    def short_sha256(self, obj):
        return obj.sha256[:12]

    @admin.display(description="download")
    def download(self, obj):
        if obj.status != SnapshotFile.Status.DONE:
            return "–"
        return format_html('<a href="{}">{}</a>', reverse("api:snapshot-file-download", args=[obj.pk]), obj.filename)


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "round", "pair_count", "short_hash", "checkpoint", "created_at"]
    list_filter = ["project"]
    list_select_related = ["project", "round__project", "checkpoint"]
    search_fields = ["name", "content_hash"]
    fields = [
        "name",
        "project",
        "round",
        "checkpoint",
        "pair_count",
        "rows",
        "content_hash",
        "filters",
        "created_by",
        "created_at",
        "export",
    ]
    readonly_fields = fields
    inlines = [SnapshotFileInline]
    actions = ["write_parquet_files"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Write Parquet files (trl, openai, sharegpt) on a worker")
    def write_parquet_files(self, request, queryset):
        asked = 0
        for snapshot in queryset.select_related("checkpoint"):
            for fmt in FORMATS:
                if fmt == "trl" and snapshot.checkpoint_id is None:
                    self.message_user(
                        request,
                        f"{snapshot}: no checkpoint, so no trl file (its prompts need a chat template)",
                        messages.WARNING,
                    )
                    continue
                snapshot_file_request(snapshot=snapshot, fmt=fmt, created_by=request.user)
                asked += 1
        self.message_user(
            request,
            f"{asked} file(s) asked for: each snapshot's page shows their status (a file "
            "made before is kept; a failed one is made again).",
        )

    @admin.display(description="hash", ordering="content_hash")
    def short_hash(self, obj):
        return obj.content_hash[:12]

    @admin.display(description="rows")
    def rows(self, obj):
        url = reverse("admin:datasets_snapshotpair_changelist") + f"?snapshot__id__exact={obj.pk}"
        return format_html('<a href="{}">{} frozen pairs</a>', url, obj.pair_count)

    @admin.display(description="export")
    def export(self, obj):
        command = (
            f"python manage.py export_dataset --project '{obj.project.name}' --snapshot {obj.pk} "
            f"--format trl --output snapshot-{obj.pk}.trl.jsonl"
        )
        return format_html(
            "<code>{}</code><br>formats: trl (--span fragment|completion), openai, sharegpt; "
            "REST: <code>GET /api/v1/snapshots/{}/export/?format=trl</code>; Parquet files: the "
            "action <i>Write Parquet files</i>, or <code>POST /api/v1/snapshots/{}/files/</code>",
            command,
            obj.pk,
            obj.pk,
        )


@admin.register(SnapshotPair)
class SnapshotPairAdmin(admin.ModelAdmin):
    list_display = ["snapshot", "ordinal", "deficiency", "gap", "status"]
    list_filter = ["deficiency", "status"]
    raw_id_fields = ["snapshot", "pair", "query"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
