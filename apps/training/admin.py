"""Admin for rounds, checkpoints and evaluation runs."""

from django.contrib import admin, messages

from itool_web.admin_display import pretty_json

from .models import Checkpoint, EvalRun, TrainingRound


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "parent", "round", "created_at"]
    list_filter = ["kind", "project"]
    search_fields = ["name", "path"]
    raw_id_fields = ["parent", "round"]
    readonly_fields = ["config_display"]

    @admin.display(description="config")
    def config_display(self, obj):
        return pretty_json(obj.config)


@admin.register(TrainingRound)
class TrainingRoundAdmin(admin.ModelAdmin):
    list_display = ["__str__", "state", "algorithm", "gate", "policy_in", "policy_out", "created_at"]
    list_filter = ["state", "algorithm", "project"]
    raw_id_fields = ["policy_in", "policy_out", "snapshot", "created_by"]
    list_select_related = ["project", "policy_in", "policy_out"]
    readonly_fields = ["progress_display", "metrics_display"]
    actions = ["launch", "cancel", "resume"]

    def _act(self, request, queryset, action: str) -> None:
        from .lifecycle import LaunchRefused, round_cancel, round_launch, round_resume

        run = {"launch": round_launch, "cancel": round_cancel, "resume": round_resume}[action]
        for rnd in queryset:
            try:
                run(round_id=rnd.pk, user=request.user)
                self.message_user(request, f"{rnd}: {action} done", messages.SUCCESS)
            except LaunchRefused as refused:
                self.message_user(request, f"{rnd}: {action} refused — {refused}", messages.ERROR)

    @admin.action(description="Launch (start a draft round, or train a reviewed one past its gate)")
    def launch(self, request, queryset):
        self._act(request, queryset, "launch")

    @admin.action(description="Cancel (revoke its tasks, keep its data)")
    def cancel(self, request, queryset):
        self._act(request, queryset, "cancel")

    @admin.action(description="Resume a failed round at the stage that failed")
    def resume(self, request, queryset):
        self._act(request, queryset, "resume")

    @admin.display(description="progress")
    def progress_display(self, obj):
        return pretty_json(obj.progress)

    @admin.display(description="metrics")
    def metrics_display(self, obj):
        return pretty_json(obj.metrics)


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["id", "checkpoint", "round", "split", "status", "n_queries", "created_at"]
    list_filter = ["status", "split", "project"]
    raw_id_fields = ["checkpoint", "round"]
    readonly_fields = ["metrics_display"]

    @admin.display(description="metrics")
    def metrics_display(self, obj):
        return pretty_json(obj.metrics)
