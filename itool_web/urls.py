"""URL routes: the review pages for people, the admin for data, Django's login and logout, the REST API and
its OpenAPI schema and docs."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from .login_limit import password_checks_limited
from .validation import IdConverter

# `<id:…>`: a row id in the database's range, else 404 (registered before the apps' URL modules are included)
register_converter(IdConverter, "id")

admin.site.site_header = "iTool Web"
admin.site.site_title = "iTool Web"
admin.site.index_title = "Data, search trees, pairs and rounds"

urlpatterns = [
    path("", login_required(RedirectView.as_view(pattern_name="projects:list", permanent=False)), name="home"),
    # password guesses are limited per client address, as on the API's token endpoint (API_AUTH_THROTTLE_RATE)
    path("accounts/login/", password_checks_limited(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/", include("apps.projects.urls")),
    path("projects/<id:project_id>/pairs/", include("apps.curation.urls")),
    path("projects/<id:project_id>/trees/", include("apps.search.urls")),
    path("projects/<id:project_id>/rounds/", include("apps.training.urls")),
    path("projects/<id:project_id>/rounds/<int:number>/arms/", include("apps.arms.urls")),
    path("admin/login/", password_checks_limited(admin.site.login)),  # before admin.site.urls: it wins
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the split view serves its start-up script as a file: the Content-Security-Policy allows no inline script
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
