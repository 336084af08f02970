"""Admin for snapshots: read-only, since a snapshot never changes once frozen."""
from django.contrib import admin

from .models import DatasetSnapshot, SnapshotPair


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "round", "pair_count", "content_hash", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "content_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
