"""``GET /api/search/``, ``POST /api/search/image/``, ``GET /api/suggest/``, ``GET /api/similar/<type>/<id>/``
and ``GET /api/schema/``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, QueryDict
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog_search import conf
from catalog_search.analytics import events, record
from catalog_search.api.errors import exception_handler
from catalog_search.api.responses import serialize_results
from catalog_search.api.schema import openapi_schema
from catalog_search.api.throttling import EventThrottle, ImageSearchThrottle, SuggestThrottle, TextSearchThrottle
from catalog_search.api.uploads import LimitedMemoryUploadHandler
from catalog_search.exceptions import ImageTooLarge, InvalidImage, InvalidQuery
from catalog_search.registry import parse_bool
from catalog_search.retrieval.engine import search
from catalog_search.retrieval.similar import similar_by_key
from catalog_search.retrieval.suggest import suggest

PARAMETERS = (
    "q",
    "k",
    "offset",
    "mode",
    "fusion",
    "alpha",
    "explain",
    "understand",
    "hard",
    "drop",
    "sort",
    "highlight",
    "ranking",
)
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the image


class JSONOnly(DefaultContentNegotiation):
    """Parsers by Content-Type as usual; always render JSON (``?format=`` is just an unknown filter)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SearchAPIView(APIView):
    authentication_classes: list = []  # a public, read-only endpoint: no session, no CSRF
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly

    def get_exception_handler(self):
        return exception_handler

    @staticmethod
    def split(data: QueryDict, parameters: tuple[str, ...] = PARAMETERS) -> tuple[dict[str, str], dict[str, list[str]]]:
        """``parameters`` (single-valued) and filters (repeatable, OR-ed) from a query or form."""
        params: dict[str, str] = {}
        filters: dict[str, list[str]] = {}
        for key, values in data.lists():
            if key == "image":
                continue
            values = [v for v in values if isinstance(v, str)]
            if key in parameters:
                if len(values) != 1:
                    raise InvalidQuery(f"'{key}' must be given once.")
                params[key] = values[0]
            else:
                filters[key] = values
        return params, filters

    @staticmethod
    def explain_flag(value: str | None) -> bool:
        if value is None or not value.strip():  # absent or empty: off
            return False
        flag = parse_bool(value)
        if flag is None:
            raise InvalidQuery("'explain' must be 1 or 0.")
        return flag

    def run(self, params: dict[str, str], filters: dict[str, Any], image: Any = None) -> Response:
        results = search(
            q=params.get("q"),
            image=image,
            filters=filters,
            k=params.get("k"),
            offset=params.get("offset"),
            mode=params.get("mode"),
            fusion=params.get("fusion"),
            alpha=params.get("alpha"),
            explain=self.explain_flag(params.get("explain")),
            understand=params.get("understand"),
            hard=params.get("hard"),
            drop=params.get("drop"),
            sort=params.get("sort"),
            highlight=params.get("highlight"),
            ranking=params.get("ranking"),
        )
        kind = "photo" if image is not None and not params.get("q") else "photo+text" if image is not None else "text"
        return _recorded(
            self.request, serialize_results(results), kind=kind, q=params.get("q"), filters=filters, results=results
        )


class TextSearchView(SearchAPIView):
    """Search with a text query, filters and facets."""

    throttle_classes = [TextSearchThrottle]

    def get(self, request: Request) -> Response:
        params, filters = self.split(request.query_params)
        return self.run(params, filters)


class ImageSearchView(SearchAPIView):
    """Search with a photo (multipart field ``image``), optionally refined by ``q``."""

    throttle_classes = [ImageSearchThrottle]
    parser_classes = [MultiPartParser]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        request.upload_handlers = [LimitedMemoryUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    def post(self, request: Request) -> Response:
        limit = conf.settings().MAX_IMAGE_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit + MULTIPART_OVERHEAD:
            raise ImageTooLarge(f"The upload is larger than the {limit:,}-byte image limit.")
        upload = request.FILES.get("image")
        if upload is None:
            if "image" in request.data:
                raise InvalidImage("'image' must be a file upload (multipart/form-data).")
            raise InvalidQuery("Send the photo as the multipart file field 'image'.", code="missing_image")
        params, filters = self.split(request.data)
        return self.run(params, filters, image=upload)


class SuggestView(SearchAPIView):
    """Completions and products for the words being typed (``q``, its last word a prefix)."""

    throttle_classes = [SuggestThrottle]
    parameters = ("q", "k", "products")

    def get(self, request: Request) -> Response:
        params = {}
        for key, values in request.query_params.lists():
            if key in self.parameters:
                if len(values) != 1:
                    raise InvalidQuery(f"'{key}' must be given once.")
                params[key] = values[0]
        # Other parameters (a page's own, a cache-buster) are ignored: suggestions take no filters.
        found = suggest(params.get("q"), k=params.get("k"), products=params.get("products"))
        return Response(found.as_dict())


class SimilarView(SearchAPIView):
    """The products nearest one product (``<type>`` "shop.product", ``<id>`` its key), with filters."""

    throttle_classes = [TextSearchThrottle]
    parameters = ("k", "offset", "facets")

    def get(self, request: Request, type: str, id: str) -> Response:
        # The search parameters too, so one sent here is named in a 400, not taken for a filter.
        params, filters = self.split(request.query_params, (*PARAMETERS, *self.parameters))
        unknown = set(params) - set(self.parameters)
        if unknown:
            raise InvalidQuery(
                f"'{sorted(unknown)[0]}' is a search parameter; similar takes k, offset, facets and filters."
            )
        found = similar_by_key(
            type, id, k=params.get("k"), offset=params.get("offset"), facets=params.get("facets"), filters=filters
        )
        return _recorded(request, serialize_results(found), kind="similar", q=None, filters=filters, results=found)


def _recorded(request: Request, data: dict[str, Any], **search: Any) -> Response:
    """The response, with the ``search_id`` of its analytics record (analytics/record.py) when they are on."""
    search_id = record.record_search(request, **search)
    return Response({**data, "search_id": search_id} if search_id else data)


class EventView(SearchAPIView):
    """A shopper's click on a result, or an add to cart from it: ``{"search_id", "event", "type", "id",
    "position"}`` (JSON), the ``search_id`` a search response gave. 202 when recorded."""

    throttle_classes = [EventThrottle]
    parser_classes = [JSONParser]

    def post(self, request: Request) -> Response:
        if not conf.settings().ANALYTICS:
            raise InvalidQuery("Search analytics are off.", code="analytics_off")
        event = events.parse(request.data)
        record.record_interaction(request, **event)
        return Response({"recorded": event["kind"]}, status=202)


class SchemaView(APIView):
    """The OpenAPI 3 document of this API, built from the registered indexes."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly

    def get(self, request: Request) -> Response:
        return Response(openapi_schema(request.build_absolute_uri("/")))
