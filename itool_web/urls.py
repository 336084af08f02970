"""URL routes."""
from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "iTool Web"
admin.site.site_title = "iTool Web"
admin.site.index_title = "Data, search trees, pairs and rounds"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]
