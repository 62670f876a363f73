"""The demo's URLs. Product photos (media) are served by Django here, whatever DEBUG says: a demo has no
web server in front; a shop serves media from its storage or web server."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from demo_project.shop import views

urlpatterns = [
    path("", views.search_page, name="search"),
    path("admin/", admin.site.urls),
    path("api/", include("catalog_search.api.urls")),
    re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
]
