"""Admin for search trees and their nodes."""

from django.contrib import admin

from itool_web.admin_display import pretty_json, shorten

from .models import SearchTree, TreeNode


@admin.register(SearchTree)
class SearchTreeAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "round", "query", "status", "simulations_done", "node_count", "valid_leaves"]
    list_filter = ["status", "project"]
    search_fields = ["query__external_id"]
    raw_id_fields = ["query", "round", "policy"]
    list_select_related = ["project", "round", "query"]
    readonly_fields = ["config_display"]

    @admin.display(description="config")
    def config_display(self, obj):
        return pretty_json(obj.config)


@admin.register(TreeNode)
class TreeNodeAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tree",
        "depth",
        "fragment_short",
        "visits",
        "value_display",
        "is_terminal",
        "terminal_reward",
    ]
    list_filter = ["is_terminal", "depth"]
    raw_id_fields = ["tree", "parent"]
    readonly_fields = ["verdict_display"]
    show_full_result_count = False  # counting ten million rows on every page is not worth it

    @admin.display(description="fragment")
    def fragment_short(self, obj):
        return shorten(obj.fragment, 60)

    @admin.display(description="value")
    def value_display(self, obj):
        return f"{obj.value:.3f}"

    @admin.display(description="verdict")
    def verdict_display(self, obj):
        return pretty_json(obj.verdict)
