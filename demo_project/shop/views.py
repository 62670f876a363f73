"""The demo shop's search page at ``/``: rendered on the server, so it works without JavaScript.

GET runs a text search (``q``, filters in the query string, ``page``, ``drop``); POST runs a photo search
from the multipart photo form (the photo is decoded in memory and never stored). What the engine understood
in the words (a product type, a color, a price bound) shows as chips; removing one searches again with it in
``drop``, the words unchanged. A corrected typo says so, with a link to search the words as typed.
``static/shop/search.js`` then enhances the page: drag-and-drop, previews and searches through the JSON API
without reloads (it renders chips and the correction line the same way).
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

import catalog_search
from catalog_search import conf
from catalog_search.api.uploads import LimitedMemoryUploadHandler
from catalog_search.exceptions import InvalidQuery, NotFound, NotIndexed, ServiceUnavailable
from catalog_search.retrieval.results import SearchResults
from demo_project.shop.models import Product

logger = logging.getLogger(__name__)

PER_PAGE = 24
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the photo
FACETS = (("category", "Category"), ("product_type", "Type"), ("brand", "Brand"), ("color", "Color"))
FIELD_LABELS = {"product_type": "Type"}  # other understood fields are shown title-cased: "color" -> "Color"
BOUND_SIGNS = {"gte": "≥", "lte": "≤", "gt": ">", "lt": "<"}
APPLIED = {"boost": "ranks matching products first", "filter": "shows only matching products"}
PRICE_KEYS = ("price__gte", "price__lte", "price__lt")
NOT_FILTERS = {"q", "page", "csrfmiddlewaretoken", "image", "drop", "sort", "similar"}
# The sort menu: the engine's sort values (the index's sort_fields) and their labels.
SORTS = (
    ("relevance", "Relevance"),
    ("price", "Price: low to high"),
    ("-price", "Price: high to low"),
    ("-added_at", "Newest"),
    ("title", "Name: A–Z"),
)
TRACKING = ("utm_", "fbclid", "gclid", "msclkid")  # links from ads and newsletters carry these: ignore them
UNAVAILABLE = "Search is temporarily unavailable. Please try again in a moment."


@csrf_exempt  # checked by _photo_search, once the memory-only upload handler is in place
@require_http_methods(["GET", "HEAD", "POST"])
def search_page(request: HttpRequest) -> HttpResponse:
    """The search page: text search for GET, photo search for POST."""
    if request.method != "POST":
        return _text_search(request)
    limit = conf.settings().MAX_IMAGE_BYTES
    if _content_length(request) > limit + MULTIPART_OVERHEAD:
        return _error(request, f"The photo is larger than the {limit // (1024 * 1024)} MB limit.", 413, photo=True)
    request.upload_handlers = [LimitedMemoryUploadHandler(request)]
    try:
        return _photo_search(request)
    except InvalidQuery as exc:  # the upload went over the limit while it was being read
        return _error(request, exc.message, exc.status, photo=True)
    except (MultiPartParserError, RequestDataTooBig, SuspiciousOperation):
        return _error(request, "The photo upload could not be read. Please choose the photo again.", 400, photo=True)


def _text_search(request: HttpRequest) -> HttpResponse:
    params = request.GET
    if params.get("similar", "").strip():
        return _similar_search(request)
    q = params.get("q", "").strip()
    if not q:
        return _render(request, {"hint": True, "examples": _examples()})
    try:
        page = _page_number(params.get("page"))
        filters = _filters(params)
        offset = (page - 1) * PER_PAGE
        # One extra result tells whether there is a next page.
        drop = _dropped(params) or None
        results = catalog_search.search(
            q=q,
            filters=filters,
            k=PER_PAGE + 1,
            offset=offset,
            explain=True,
            drop=drop,
            sort=_sort(params),
            highlight=True,
        )
    except InvalidQuery as exc:
        return _error(request, exc.message, exc.status, request.GET, q=q)
    except ServiceUnavailable as exc:
        return _error(request, UNAVAILABLE, 503, request.GET, q=q, detail=exc.message)
    if results.query.get("redirect") and page == 1:  # a query rule sends this query to a page of its own
        return HttpResponseRedirect(results.query["redirect"])
    has_next = len(results) > PER_PAGE and offset + PER_PAGE <= conf.settings().MAX_OFFSET
    context = _results_context(params, results, q=q, offset=offset)
    context.update(
        page=page,
        prev_url=_url(params, page=page - 1 if page > 2 else None) if page > 1 else None,
        next_url=_url(params, page=page + 1) if has_next else None,
    )
    return _render(request, context)


def _similar_search(request: HttpRequest) -> HttpResponse:
    """``?similar=<id>``: "More like this" for one product, the sidebar's filters applied."""
    params = request.GET
    try:
        page = _page_number(params.get("page"))
        product = _product(params.get("similar", ""))
        offset = (page - 1) * PER_PAGE
        results = catalog_search.similar(product, k=PER_PAGE + 1, offset=offset, filters=_filters(params))
    except (InvalidQuery, NotFound, NotIndexed) as exc:
        return _error(request, exc.message, exc.status, params)
    except ServiceUnavailable as exc:
        return _error(request, UNAVAILABLE, 503, params, detail=exc.message)
    has_next = len(results) > PER_PAGE and offset + PER_PAGE <= conf.settings().MAX_OFFSET
    context = _results_context(params, results, q="", offset=offset)
    context.update(
        similar_to=product,
        page=page,
        clear_url=_url(QueryDict(mutable=True), similar=product.pk),
        prev_url=_url(params, page=page - 1 if page > 2 else None) if page > 1 else None,
        next_url=_url(params, page=page + 1) if has_next else None,
    )
    return _render(request, context)


def _product(raw: str) -> Product:
    product = Product.objects.filter(pk=int(raw)).first() if raw.strip().isdigit() and len(raw) < 19 else None
    if product is None:
        raise NotFound(f"There is no product {raw[:40]!r}.")
    return product


@csrf_protect
def _photo_search(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("image")
    refine = request.POST.get("q", "").strip()
    if upload is None:
        return _error(request, "Choose a photo to search with.", 400, request.POST, photo=True, refine=refine)
    try:
        filters = _filters(request.POST)
        drop = _dropped(request.POST) or None
        results = catalog_search.search(
            q=refine or None,
            image=upload,
            filters=filters,
            k=PER_PAGE,
            explain=True,
            drop=drop,
            sort=_sort(request.POST),
            highlight=True,
        )
    except InvalidQuery as exc:
        return _error(request, exc.message, exc.status, request.POST, photo=True, refine=refine)
    except ServiceUnavailable as exc:
        return _error(request, UNAVAILABLE, 503, request.POST, photo=True, refine=refine, detail=exc.message)
    context = _results_context(request.POST, results, q="", offset=0)
    context.update(photo=True, refine=refine, page=1)
    return _render(request, context)


def _results_context(params: QueryDict, results: SearchResults, *, q: str, offset: int) -> dict:
    hits = results.results[:PER_PAGE]
    selected = {name: params.getlist(name) for name, _label in FACETS}
    return {
        "searched": True,
        "q": q,
        "results": results,
        "also_searched": _also_searched(results.query.get("expanded") or {}),
        "chips": _chips(params, results.query.get("understanding") or []),
        "correction": _correction(params, results.query),
        "drop": ",".join(_dropped(params)),
        "hits": hits,
        "first": offset + 1,
        "last": offset + len(hits),
        "facet_groups": [_facet_group(name, label, results.facets, selected[name]) for name, label in FACETS],
        "price_buckets": _price_buckets(params, results.facets.get("price", [])),
        "price": {key: params.get(key, "") for key in PRICE_KEYS},
        "in_stock": params.get("in_stock", "") in ("true", "1", "yes", "on"),
        "carry": _filter_pairs(params),
        "has_filters": bool(_filters(params)),
        "clear_url": _url(QueryDict(mutable=True), q=q) if q else "/",
        "total": _total_label(results),
        "sort_options": _sort_options(params),
        "sort": _sort(params) or "",
    }


def _sort(params: QueryDict) -> str | None:
    """The sort menu's choice (relevance when absent); an unknown one is the engine's 400."""
    return params.get("sort", "").strip() or None


def _sort_options(params: QueryDict) -> list[dict[str, Any]]:
    current = _sort(params) or "relevance"
    return [{"value": value, "label": label, "selected": value == current} for value, label in SORTS]


def _total_label(results: SearchResults) -> str:
    """``1,234 results``; at least that many: ``1,000+ results``."""
    total = results.total
    plus = "+" if total.relation == "gte" else ""
    return f"{total.value:,}{plus} result{'' if total.value == 1 and not plus else 's'}"


def _also_searched(expanded: dict[str, list[str]]) -> str:
    """What query expansion added, for the results heading: “pocketbook” → handbag; “telly” → television."""
    return "; ".join(f"“{word}” → {', '.join(added)}" for word, added in expanded.items())


def _dropped(params: QueryDict) -> list[str]:
    """The understood parts this search leaves out: ``drop``, comma-separated (or repeated)."""
    names = (name.strip() for value in params.getlist("drop") for name in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


def _without(params: QueryDict, name: str) -> str:
    """This search's URL, the words unchanged, leaving the understood part ``name`` out as well."""
    return _url(params, drop=",".join(dict.fromkeys([*_dropped(params), name])), page=None)


def _chips(params: QueryDict, understanding: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One removable chip per understood field, in the query's order. Per field, not per value: ``drop``
    leaves a whole field out ("red or blue" is one chip), and every price bound with the price field."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for part in understanding:
        grouped.setdefault(part["field"], []).append(part)
    return [_chip(params, name, parts) for name, parts in grouped.items()]


def _chip(params: QueryDict, name: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    origins = dict.fromkeys("the photo" if p["source"] == "photo" else f"“{p['words']}”" for p in parts)
    applied = "filter" if any(p["applied"] == "filter" for p in parts) else "boost"
    return {
        "label": _chip_label(name, parts),
        "title": f"from {', '.join(origins)} · {APPLIED[applied]}",
        "applied": applied,
        "drop": name,
        "url": _without(params, name),
    }


def _chip_label(name: str, parts: list[dict[str, Any]]) -> str:
    """``Type: handbag``, ``Color: red, blue``; bounds: ``Price ≤ 50``, ``Price 20–40``."""
    label = FIELD_LABELS.get(name) or " ".join(w[:1].upper() + w[1:] for w in name.split("_") if w)
    bounds = {p["lookup"]: _num(p["value"]) for p in parts if p["lookup"] != "exact"}
    if not bounds:
        return f"{label}: {', '.join(dict.fromkeys(str(p['value']) for p in parts))}"
    if "gte" in bounds and "lte" in bounds:
        return f"{label} {bounds['gte']}–{bounds['lte']}"
    return f"{label} " + " ".join(f"{BOUND_SIGNS.get(lookup, lookup)} {value}" for lookup, value in bounds.items())


def _correction(params: QueryDict, query: dict[str, Any]) -> dict[str, Any] | None:
    """The words corrected and their corrections ("Showing results for sneakers (you typed snekers)"), and
    the link that searches the words as typed."""
    words = (query.get("corrected") or {}).get("words") or {}
    if not words:
        return None
    return {
        "typed": list(words),
        "fixed": list(words.values()),
        "q": query.get("q"),
        "url": _without(params, "spelling"),
    }


def _facet_group(name: str, label: str, facets: dict[str, list[dict]], selected: list[str]) -> dict[str, Any]:
    """Checkbox options with counts; selected values stay listed even when nothing matches them."""
    # Products without a value (no product type) are counted under "": nothing a shopper can pick.
    options = [{"value": str(o["value"]), "count": o["count"]} for o in facets.get(name, []) if str(o["value"])]
    known = {o["value"] for o in options}
    options += [{"value": v, "count": 0} for v in selected if v not in known]
    for option in options:
        option["checked"] = option["value"] in selected
    return {"name": name, "label": label, "options": options}


def _price_buckets(params: QueryDict, buckets: list[dict]) -> list[dict[str, Any]]:
    """The price facet's ``[min, max)`` buckets as links that set ``price__gte`` and ``price__lt``."""
    out = []
    for bucket in buckets:
        low, high = _num(bucket["min"]), _num(bucket["max"])
        if high is None:
            label = f"${low} and up"
        elif bucket["min"] == 0:
            label = f"Under ${high}"
        else:
            label = f"${low} – ${high}"
        active = params.get("price__gte", "") == low and params.get("price__lt", "") == (high or "")
        changes = {"price__gte": low, "price__lt": high, "price__lte": None, "page": None}
        if active:
            changes.update(price__gte=None, price__lt=None)
        url = _url(params, **changes)
        out.append({"label": label, "count": bucket["count"], "active": active, "url": url, "gte": low, "lt": high})
    return out


def _error(
    request: HttpRequest, message: str, status: int, params: QueryDict | None = None, **context: Any
) -> HttpResponse:
    """The page with an error message; ``params`` (when readable) carry the filters to the next search."""
    q = context.get("q", "")
    context.update(error=message, carry=_filter_pairs(params) if params is not None else [])
    if q:
        context["clear_url"] = _url(QueryDict(mutable=True), q=q)
    return _render(request, context, status=status)


def _render(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    context.setdefault("q", request.GET.get("q", "").strip())
    # Empty facet groups still render, so the script can fill them after a search without reload.
    context.setdefault("facet_groups", [{"name": name, "label": label, "options": []} for name, label in FACETS])
    context.setdefault("clear_url", "/")
    context.setdefault("per_page", PER_PAGE)
    context.setdefault("max_mb", conf.settings().MAX_IMAGE_BYTES // (1024 * 1024))
    # A POST's form may be unreadable here (the error page of a broken upload): its sort is in the context.
    context.setdefault("sort_options", _sort_options(request.GET if request.method != "POST" else QueryDict()))
    return render(request, "shop/search.html", context, status=status)


def _filters(params: QueryDict) -> dict[str, list[str]]:
    """Filters in the API's style from a query string or form; empty form fields are left out."""
    filters = {}
    for key, values in params.lists():
        values = [v for v in values if isinstance(v, str) and v.strip()]
        if key not in NOT_FILTERS and not key.startswith(TRACKING) and values:
            filters[key] = values
    return filters


def _filter_pairs(params: QueryDict) -> list[tuple[str, str]]:
    return [(key, value) for key, values in _filters(params).items() for value in values]


def _page_number(raw: str | None) -> int:
    last = conf.settings().MAX_OFFSET // PER_PAGE + 1
    if raw in (None, ""):
        return 1
    try:
        page = int(raw)
    except ValueError:
        page = 0
    if not 1 <= page <= last:
        raise InvalidQuery(f"Page must be a number between 1 and {last}.")
    return page


def _url(params: QueryDict, **changes: Any) -> str:
    """``?query`` of ``params`` with some keys replaced (``None`` removes a key)."""
    query = params.copy()
    for key in ("csrfmiddlewaretoken", "image"):
        query.pop(key, None)
    for key, value in changes.items():
        query.pop(key, None)
        if value is not None:
            query[key] = str(value)
    pairs = [(k, v) for k, vs in query.lists() for v in vs if v != ""]
    return "?" + urlencode(pairs) if pairs else "/"


def _num(value: Any) -> str | None:
    """A bucket bound as it appears in URLs: ``25``, ``12.5``."""
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return str(number.quantize(Decimal(1))) if number == number.to_integral_value() else str(number.normalize())


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _examples() -> list[str]:
    """Example queries for the empty page: the catalog's biggest categories."""
    try:
        rows = Product.objects.values("category").annotate(n=Count("pk")).order_by("-n", "category")[:8]
        return [row["category"] for row in rows if row["category"]]
    except DatabaseError:
        logger.warning("shop: could not list categories for the search hints", exc_info=True)
        return []
