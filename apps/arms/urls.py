"""Arms URLs, mounted under /projects/<project_id>/rounds/<number>/arms/."""

from django.urls import path

from . import views

app_name = "arms"

urlpatterns = [
    path("", views.arms_page, name="arms"),
    path("progress.json", views.arms_progress_json, name="arms_progress"),
    path("launch/", views.arms_launch_view, name="arms_launch"),
]
