"""Search tree URLs, mounted under /projects/<project_id>/trees/."""

from django.urls import path

from . import views

app_name = "search"

urlpatterns = [
    path("<int:tree_id>/", views.tree_detail, name="tree"),
]
