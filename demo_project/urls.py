from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from demo_project.shop import views

urlpatterns = [
    path("", views.search_page, name="search"),
    path("admin/", admin.site.urls),
    path("api/", include("catalog_search.api.urls")),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
