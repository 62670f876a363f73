"""Include with ``path("api/", include("catalog_search.api.urls"))``."""

from django.urls import path

from catalog_search.api.views import EventView, ImageSearchView, SchemaView, SimilarView, SuggestView, TextSearchView

app_name = "catalog_search_api"
urlpatterns = [
    path("search/", TextSearchView.as_view(), name="search"),
    path("search/image/", ImageSearchView.as_view(), name="search-image"),
    path("suggest/", SuggestView.as_view(), name="suggest"),
    path("similar/<str:type>/<str:id>/", SimilarView.as_view(), name="similar"),
    path("events/", EventView.as_view(), name="events"),
    path("schema/", SchemaView.as_view(), name="schema"),
]
