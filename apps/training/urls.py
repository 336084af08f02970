"""Round URLs, mounted under /projects/<project_id>/rounds/."""

from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("", views.round_list, name="round_list"),
    path("<int:number>/", views.round_detail, name="round_detail"),
    path("<int:number>/progress.json", views.round_progress_json, name="round_progress"),
    *[
        path(f"<int:number>/{action}/", views.round_action, {"action": action}, name=f"round_{action}")
        for action in ("launch", "cancel", "resume")
    ],
]
