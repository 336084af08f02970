"""Admin for tools, queries and import jobs (with the upload form that starts an import)."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from itool_web.admin_display import pretty_json, shorten

from .importers import FORMATS
from .models import ImportJob, Query, QueryTool, Tool
from .services import import_job_enqueue, import_jobs_reap


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "source", "has_implementation", "short_hash", "created_at"]
    list_filter = ["source", "project"]
    search_fields = ["name", "description"]
    readonly_fields = ["schema_hash", "parameters_display"]

    @admin.display(boolean=True, description="implementation")
    def has_implementation(self, obj):
        return bool(obj.implementation)

    @admin.display(description="schema hash")
    def short_hash(self, obj):
        return obj.schema_hash[:12]

    @admin.display(description="parameters")
    def parameters_display(self, obj):
        return pretty_json(obj.parameters)


class QueryToolInline(admin.TabularInline):
    model = QueryTool
    extra = 0
    raw_id_fields = ["tool"]


@admin.register(Query)
class QueryAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "kind", "split", "difficulty_bucket", "difficulty", "source", "prompt"]
    list_filter = ["kind", "split", "difficulty_bucket", "source", "project"]
    search_fields = ["external_id", "reference_output"]
    list_select_related = ["project"]
    readonly_fields = ["content_hash", "messages_display", "ground_truth_display", "sub_answers_display"]
    inlines = [QueryToolInline]
    show_full_result_count = False

    @admin.display(description="prompt")
    def prompt(self, obj):
        users = [m.get("content") or "" for m in obj.messages if m.get("role") == "user"]
        return shorten(users[-1] if users else "", 70)

    @admin.display(description="messages")
    def messages_display(self, obj):
        return pretty_json(obj.messages)

    @admin.display(description="ground truth")
    def ground_truth_display(self, obj):
        return pretty_json(obj.ground_truth)

    @admin.display(description="sub-answers")
    def sub_answers_display(self, obj):
        return pretty_json(obj.sub_answers)


class ImportUploadForm(forms.ModelForm):
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS])

    class Meta:
        model = ImportJob
        fields = ["project", "format", "split", "file", "answers_file"]
        help_texts = {"answers_file": "BFCL only: the possible_answer file of the same category."}

    def clean(self):
        data = super().clean()
        if data.get("answers_file") and data.get("format") != "bfcl":
            self.add_error("answers_file", "An answer file goes with the bfcl format only.")
        return data


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "project", "format", "split", "status", "progress_bar", "created_at"]
    list_filter = ["status", "format", "project"]
    readonly_fields = [
        "status",
        "progress_bar",
        "counts_display",
        "error",
        "task_id",
        "created_by",
        "started_at",
        "heartbeat_at",
        "finished_at",
    ]
    add_form_template = "admin/catalog/importjob/add_form.html"

    def changelist_view(self, request, extra_context=None):
        import_jobs_reap()  # a job whose worker died shows as failed, with the reason, not as running forever
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        import_jobs_reap()
        return super().change_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ImportUploadForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ImportUploadForm.Meta.fields
        return ["project", "format", "split", "original_name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["project", "format", "split", "original_name", *self.readonly_fields]

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "max_upload_bytes": settings.IMPORT_MAX_UPLOAD_BYTES}
        if request.method == "POST":
            request.FILES  # noqa: B018 — parse the body now: the upload handler flags an oversized one
            if getattr(request, "upload_too_large", False):
                self.message_user(
                    request,
                    f"Upload refused: larger than the limit of {filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)} "
                    "(IMPORT_MAX_UPLOAD_BYTES). Nothing was stored; import big files with "
                    "`manage.py import_data` on the server.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(request.path)
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.original_name = obj.file.name.rsplit("/", 1)[-1]
            obj.progress_total = obj.file.size
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            transaction.on_commit(lambda: import_job_enqueue(obj.pk))

    @admin.display(description="progress")
    def progress_bar(self, obj):
        running = obj.status in (ImportJob.Status.PENDING, ImportJob.Status.RUNNING)
        reload = mark_safe("<script>setTimeout(() => location.reload(), 2000)</script>") if running else ""
        return format_html('<progress value="{}" max="100"></progress> {}%{}', obj.percent, obj.percent, reload)

    @admin.display(description="counts")
    def counts_display(self, obj):
        return pretty_json(obj.counts)
