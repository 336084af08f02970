"""Project URLs, mounted under /projects/."""

from django.urls import path

from . import views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("<id:project_id>/", views.project_dashboard, name="dashboard"),
    path("<id:project_id>/guidelines/", views.project_guidelines, name="guidelines"),
]
