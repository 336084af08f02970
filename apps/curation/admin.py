"""Admin for preference pairs and the review audit trail."""

from django.contrib import admin

from itool_web.admin_display import pretty_json, shorten

from .models import PairAssignment, PreferencePair, ReviewEvent


class ReviewEventInline(admin.TabularInline):
    model = ReviewEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "user", "action", "version", "note"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PreferencePair)
class PreferencePairAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "round",
        "status",
        "deficiency",
        "gap",
        "chosen_short",
        "rejected_short",
        "assignee",
    ]
    list_filter = ["status", "deficiency", "project", "round"]
    search_fields = ["chosen", "rejected", "prefix", "query__external_id"]
    raw_id_fields = ["query", "tree", "node", "chosen_node", "rejected_node", "round", "assignee", "reviewed_by"]
    list_select_related = ["project", "round", "assignee"]
    readonly_fields = ["version", "dedup_key", "chosen_verdict_display", "rejected_verdict_display"]
    # Verdicts come from the checker, and the agreement figures follow them through the review services.
    exclude = ["chosen_verdict", "rejected_verdict"]
    inlines = [ReviewEventInline]
    show_full_result_count = False

    @admin.display(description="chosen")
    def chosen_short(self, obj):
        return shorten(obj.chosen, 50)

    @admin.display(description="rejected")
    def rejected_short(self, obj):
        return shorten(obj.rejected, 50)

    @admin.display(description="chosen verdict")
    def chosen_verdict_display(self, obj):
        return pretty_json(obj.chosen_verdict)

    @admin.display(description="rejected verdict")
    def rejected_verdict_display(self, obj):
        return pretty_json(obj.rejected_verdict)


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is written by the review services only."""

    list_display = ["created_at", "pair", "user", "action", "version"]
    list_filter = ["action"]
    search_fields = ["user__username", "note"]
    list_select_related = ["user"]
    raw_id_fields = ["pair", "user"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PairAssignment)
class PairAssignmentAdmin(admin.ModelAdmin):
    """Read-only: leases and decisions are written by the review services (the agreement figures follow them)."""

    list_display = ["pair", "user", "decision", "leased_until", "decided_at"]
    list_filter = ["decision"]
    search_fields = ["user__username"]
    raw_id_fields = ["pair", "user"]
    list_select_related = ["user"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
