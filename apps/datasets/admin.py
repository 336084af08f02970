"""Admin for snapshots: read-only, since a snapshot never changes once frozen."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import DatasetSnapshot, SnapshotPair


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "round", "pair_count", "short_hash", "checkpoint", "created_at"]
    list_filter = ["project"]
    list_select_related = ["project", "round__project", "checkpoint"]
    search_fields = ["name", "content_hash"]
    fields = ["name", "project", "round", "checkpoint", "pair_count", "rows", "content_hash", "filters",
              "created_by", "created_at", "export"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="hash", ordering="content_hash")
    def short_hash(self, obj):
        return obj.content_hash[:12]

    @admin.display(description="rows")
    def rows(self, obj):
        url = reverse("admin:datasets_snapshotpair_changelist") + f"?snapshot__id__exact={obj.pk}"
        return format_html('<a href="{}">{} frozen pairs</a>', url, obj.pair_count)

    @admin.display(description="export")
    def export(self, obj):
        command = (f"python manage.py export_dataset --project '{obj.project.name}' --snapshot {obj.pk} "
                   f"--format trl --output snapshot-{obj.pk}.trl.jsonl")
        return format_html("<code>{}</code><br>formats: trl (--span fragment|completion), openai, sharegpt; "
                           "REST: <code>GET /api/v1/snapshots/{}/export/?format=trl</code>", command, obj.pk)


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
