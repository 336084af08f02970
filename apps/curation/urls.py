"""Review URLs, mounted under /projects/<project_id>/pairs/."""

from django.urls import path

from . import views
from .actions import ACTIONS

app_name = "curation"

urlpatterns = [
    path("", views.pair_list, name="pair_list"),
    path("next/", views.pair_next, name="pair_next"),
    path("bulk/", views.pair_bulk, name="pair_bulk"),
    path("<id:pair_id>/", views.pair_focus, name="pair_focus"),
    path("<id:pair_id>/history/", views.pair_history, name="pair_history"),
    path("<id:pair_id>/score/", views.pair_score, name="pair_score"),
    *[path(f"<id:pair_id>/{name}/", views.pair_action, {"action": name}, name=f"pair_{name}") for name in ACTIONS],
]
