"""Routes of the REST API, mounted at /api/v1/."""

from django.http import JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.routers import DefaultRouter

from .arms import ArmRunViewSet
from .auth import TokenObtainView
from .catalog import ImportJobViewSet, ImportUploadView, QueryViewSet, ToolViewSet
from .curation import PairEventList, PairViewSet
from .datasets import SnapshotFileViewSet, SnapshotViewSet
from .projects import ProjectViewSet
from .search import TreeNodeList, TreeViewSet
from .training import CheckpointViewSet, EvalResultList, EvalRunViewSet, RoundViewSet


class Router(DefaultRouter):
    """No root view and no `.json` suffixes (`?format=` names an export format); ids are numbers, so any
    other path segment is a plain 404."""

    include_root_view = False
    include_format_suffixes = False

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        return f"<int:{lookup_prefix}pk>"


router = Router(use_regex_path=False)
router.register("projects", ProjectViewSet, basename="project")
router.register("tools", ToolViewSet, basename="tool")
router.register("queries", QueryViewSet, basename="query")
router.register("imports", ImportJobViewSet, basename="import")
router.register("trees", TreeViewSet, basename="tree")
router.register("pairs", PairViewSet, basename="pair")
router.register("checkpoints", CheckpointViewSet, basename="checkpoint")
router.register("rounds", RoundViewSet, basename="round")
router.register("eval-runs", EvalRunViewSet, basename="eval-run")
router.register("snapshots", SnapshotViewSet, basename="snapshot")
router.register("snapshot-files", SnapshotFileViewSet, basename="snapshot-file")
router.register("arm-runs", ArmRunViewSet, basename="arm-run")


@csrf_exempt  # a POST to no endpoint is a 404 too, not a CSRF page
def not_found(request, path=""):
    """Any other URL under /api/v1/: a JSON 404 like the API's own, not the site's HTML page."""
    return JsonResponse({"detail": "No such endpoint (API paths end with a slash; ids are numbers)."}, status=404)


app_name = "api"
urlpatterns = [
    path("auth/token/", TokenObtainView.as_view(), name="token"),
    path("projects/<int:project_id>/imports/", ImportUploadView.as_view(), name="project-imports"),
    path("trees/<int:tree_id>/nodes/", TreeNodeList.as_view(), name="tree-nodes"),
    path("pairs/<int:pair_id>/events/", PairEventList.as_view(), name="pair-events"),
    path("eval-runs/<int:eval_run_id>/results/", EvalResultList.as_view(), name="eval-run-results"),
    *router.urls,
    re_path(r"^(?P<path>.*)$", not_found),
]
