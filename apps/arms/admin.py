"""Admin for arm runs (read-mostly: they are made by compare_arms, the arms page and REST)."""

from django.contrib import admin

from itool_web.admin_display import pretty_json

from .models import ArmRun


@admin.register(ArmRun)
class ArmRunAdmin(admin.ModelAdmin):
    list_display = ["__str__", "round", "arm", "seed", "status", "checkpoint", "eval_run", "finished_at"]
    list_filter = ["status", "arm"]
    list_select_related = ["round__project", "checkpoint", "eval_run__checkpoint"]
    raw_id_fields = ["round", "checkpoint", "eval_run", "created_by"]
    readonly_fields = ["budget_display", "metrics_display", "progress_display"]

    @admin.display(description="budget")
    def budget_display(self, obj):
        return pretty_json(obj.budget)

    @admin.display(description="metrics")
    def metrics_display(self, obj):
        return pretty_json(obj.metrics)

    @admin.display(description="progress")
    def progress_display(self, obj):
        return pretty_json(obj.progress)
