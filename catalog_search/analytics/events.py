"""What ``POST /api/events/`` accepts: a click or an add to cart on a result of a search this server
answered (its signed ``search_id``), naming a product that exists."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from catalog_search.analytics.record import search_uuid
from catalog_search.exceptions import InvalidQuery
from catalog_search.models import SearchInteraction
from catalog_search.registry import get_indexes

MAX_POSITION = 1000


def parse(data: Any) -> dict[str, Any]:
    """The interaction's fields for ``record_interaction``; ``InvalidQuery`` (400) saying what is wrong."""
    if not isinstance(data, dict):
        raise InvalidQuery('Send a JSON object: {"search_id", "event", "type", "id", "position"}.')
    unknown = set(data) - {"search_id", "event", "type", "id", "position"}
    if unknown:
        raise InvalidQuery(f"Unknown field {sorted(unknown)[0]!r}.")
    search = search_uuid(data.get("search_id")) if isinstance(data.get("search_id"), str) else None
    if search is None:
        raise InvalidQuery("'search_id' must be the search_id of a search response.", code="unknown_search")
    kind = data.get("event")
    if kind not in SearchInteraction.Kind.values:
        raise InvalidQuery(f"'event' must be one of {', '.join(SearchInteraction.Kind.values)}.")
    index, object_id = _product(data.get("type"), data.get("id"))
    return {
        "search": search,
        "kind": kind,
        "index": index,
        "object_id": object_id,
        "position": _position(data.get("position")),
    }


def _product(label: Any, raw: Any) -> tuple[str, str]:
    indexes = {index.label: index for index in get_indexes()}
    if label not in indexes:
        raise InvalidQuery(f"'type' must be one of {', '.join(sorted(indexes))}.")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidQuery("'id' must be the result's id.")
    model = indexes[label].model
    try:
        key = model._meta.pk.to_python(str(raw))
        exists = model._base_manager.filter(pk=key).exists()
    except (ValidationError, ValueError, OverflowError):
        exists = False
    if not exists:
        raise InvalidQuery(f"No {label} with id {str(raw)[:64]!r}.", code="unknown_object")
    return label, str(raw)[:64]


def _position(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_POSITION:
        raise InvalidQuery(f"'position' must be a whole number from 1 to {MAX_POSITION} (1: the first result).")
    return raw
