"""The OpenAPI 3 document, generated from the registered indexes so filters are listed exactly."""

from __future__ import annotations

import re
from typing import Any

from django.db import models

from catalog_search import conf
from catalog_search.registry import RANGE_LOOKUPS, filter_kind, get_indexes, resolve_field

# A query must contain something other than whitespace, and no NUL characters.
Q_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
TEXT_VALUE = {"type": "string", "maxLength": 255, "pattern": r"^[^\u0000]*$"}
EXPLAIN = {"type": "string", "enum": ["0", "1", "true", "false"], "default": "0"}


def _value_schema(field: models.Field) -> dict[str, Any]:
    if isinstance(field, models.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, models.IntegerField):
        return {"type": "integer"}
    if isinstance(field, models.DateTimeField):
        return {"type": "string", "format": "date-time"}
    if isinstance(field, models.DateField):
        return {"type": "string", "format": "date"}
    if isinstance(field, models.FloatField | models.DecimalField):
        return {"type": "number"}
    return dict(TEXT_VALUE)


def filter_parameters() -> list[dict[str, Any]]:
    """One parameter per declared filter and lookup, merged over all registered models."""
    seen: dict[str, dict[str, Any]] = {}
    for index in get_indexes():
        for name in index.filters:
            field = resolve_field(index.model, name)
            kind, value = filter_kind(field), _value_schema(field)
            if kind == "boolean":
                seen.setdefault(name, {"schema": value, "description": f"{name} is true or false"})
                continue
            seen.setdefault(
                name,
                {
                    "schema": {"type": "array", "items": value, "maxItems": 100},
                    "description": f"{name} equals one of the values (repeat the parameter for OR)",
                    "style": "form",
                    "explode": True,
                },
            )
            if kind == "range":
                for op in RANGE_LOOKUPS:
                    seen.setdefault(f"{name}__{op}", {"schema": value, "description": f"{name} {op} the value"})
    return [{"name": name, "in": "query", "required": False, **spec} for name, spec in sorted(seen.items())]


def _search_parameters() -> dict[str, dict[str, Any]]:
    return {
        "q": {"type": "string", "minLength": 1, "maxLength": conf.settings().MAX_QUERY_LENGTH, "pattern": Q_PATTERN},
        "k": {"type": "integer", "minimum": 1, "maximum": conf.settings().MAX_K, "default": 20},
        "offset": {"type": "integer", "minimum": 0, "maximum": conf.settings().MAX_OFFSET, "default": 0},
        "mode": {"type": "string", "enum": ["hybrid", "bm25", "vector"], "default": "hybrid"},
        "fusion": {"type": "string", "enum": ["rrf", "weighted"], "default": conf.settings().DEFAULT_FUSION},
        "alpha": {"type": "number", "minimum": 0, "maximum": 1},
        "explain": EXPLAIN,
        "understand": {**EXPLAIN, "default": "1" if conf.settings().QUERY_UNDERSTANDING else "0"},
        "hard": _names_schema("Understood fields applied as filters instead of boosts", [*_understood(), "all"]),
        "drop": _names_schema(
            "Understood parts left out (a field, the price field, or spelling)", [*_understood(), "spelling"]
        ),
        "sort": _sort_schema(),
        "ranking": {
            "type": "number",
            "minimum": 0,
            "maximum": 10,
            "default": 1,
            "description": "Multiplies the business ranking weights (the index's ranking_signals); 0: relevance alone",
        },
        "highlight": {
            **EXPLAIN,
            "description": "1 adds each result's highlight: its displayed text fields as HTML, query terms in <mark>",
        },
    }


def _sort_schema() -> dict[str, Any]:
    """relevance, or a declared sort field ascending or (``-``) descending."""
    fields = sorted({name for index in get_indexes() for name in index.sort_fields})
    return {
        "type": "string",
        "enum": ["relevance", *(f"{sign}{name}" for name in fields for sign in ("", "-"))],
        "default": "relevance",
        "description": "Order: relevance, or a declared sort field (prefix - for descending), then by id",
    }


def _understood() -> list[str]:
    names = [f.name for index in get_indexes() for f in index.understood_fields]
    return list(dict.fromkeys(names + [index.price_field for index in get_indexes() if index.price_field]))


def _names_schema(description: str, names: list[str]) -> dict[str, Any]:
    """A comma-separated list of ``names`` (a pattern, so generated requests stay inside it)."""
    one = "|".join(re.escape(n) for n in names) or "(?!)"
    return {"type": "string", "pattern": rf"^(\s*({one})\s*)?(,\s*({one})\s*)*$", "description": description}


def _suggest_parameters() -> list[dict[str, Any]]:
    q = {"type": "string", "maxLength": conf.settings().MAX_QUERY_LENGTH, "pattern": r"^[^\u0000]*$"}
    return [
        {"name": "q", "in": "query", "required": False, "schema": q, "description": "The words typed so far"},
        {
            "name": "k",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 20, "default": 8},
        },
        {
            "name": "products",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 20, "default": conf.settings().SUGGEST_PRODUCTS},
        },
    ]


def _similar_parameters() -> list[dict[str, Any]]:
    labels = sorted(index.label for index in get_indexes())
    path = [
        {"name": "type", "in": "path", "required": True, "schema": {"type": "string", "enum": labels or ["none"]}},
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 64}},
    ]
    paging = [
        {"name": name, "in": "query", "required": False, "schema": _search_parameters()[name]}
        for name in ("k", "offset")
    ]
    facets = {**EXPLAIN, "default": "1", "description": "0: no facets (cheaper)"}
    paging.append({"name": "facets", "in": "query", "required": False, "schema": facets})
    return path + paging + filter_parameters()


SEARCH_ID = {
    "type": "string",
    "description": "This search's id for POST /api/events/ (absent when search analytics are off)",
}
EVENT = {
    "type": "object",
    "required": ["search_id", "event", "type", "id"],
    "additionalProperties": False,
    "properties": {
        "search_id": SEARCH_ID,
        "event": {"type": "string", "enum": ["click", "add_to_cart"]},
        "type": {"type": "string", "description": "the result's type, e.g. shop.product"},
        "id": {"oneOf": [{"type": "string"}, {"type": "integer"}], "description": "the result's id"},
        "position": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "1: the first result"},
    },
}
EVENT_RECORDED = {"type": "object", "required": ["recorded"], "properties": {"recorded": {"type": "string"}}}


SIMILAR_RESPONSE = {
    "type": "object",
    "required": ["query", "results", "facets", "total", "took_ms"],
    "properties": {
        "query": {
            "type": "object",
            "required": ["similar_to", "filters"],
            "properties": {
                "similar_to": {
                    "type": "object",
                    "required": ["type", "id"],
                    "properties": {
                        "type": {"type": "string"},
                        "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                    },
                },
                "filters": {"type": "object", "additionalProperties": {"type": "array", "items": {}}},
            },
        },
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
        "facets": {"$ref": "#/components/schemas/Facets"},
        "total": {"$ref": "#/components/schemas/Total"},
        "took_ms": {"type": "number"},
        "search_id": SEARCH_ID,
    },
}

SUGGEST_RESPONSE = {
    "type": "object",
    "required": ["query", "completions", "products", "took_ms"],
    "properties": {
        "query": {
            "type": "object",
            "required": ["q", "prefix"],
            "properties": {
                "q": {"type": "string", "nullable": True},
                "prefix": {"type": "string", "nullable": True},
                "corrected": {
                    "type": "object",
                    "properties": {"words": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
            },
        },
        "completions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "source", "count", "estimated", "field", "value"],
                "properties": {
                    "text": {"type": "string"},
                    "source": {"type": "string", "enum": ["word", "value", "query"]},
                    "count": {"type": "integer"},
                    "estimated": {"type": "boolean"},
                    "field": {"type": "string", "nullable": True},
                    "value": {"type": "string", "nullable": True},
                },
            },
        },
        "products": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "price", "image_url", "url"],
                "properties": {
                    "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "price": {},
                    "image_url": {"type": "string", "nullable": True},
                    "url": {"type": "string", "nullable": True},
                },
            },
        },
        "took_ms": {"type": "number"},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "Bad parameter, filter or image",
        413: "Upload too large",
        404: "No such model or object",
        409: "The object is not indexed yet (the message says why)",
        415: "Not a supported image",
        429: "Throttled (see Retry-After)",
        503: "Index or encoder unavailable",
    }
    return {
        str(s): {
            "description": described[s],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for s in statuses
    }


def _ok() -> dict[str, Any]:
    return {
        "200": {
            "description": "Ranked results with facets",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResponse"}}},
        }
    }


def openapi_schema(base_url: str = "/") -> dict[str, Any]:
    params = _search_parameters()
    filters = filter_parameters()
    query_params = [
        {"name": name, "in": "query", "required": name == "q", "schema": schema} for name, schema in params.items()
    ]
    form_properties = {name: schema for name, schema in params.items()}
    form_properties["image"] = {
        "type": "string",
        "format": "binary",
        "description": "JPEG, PNG, WebP or GIF (first frame)",
    }
    for f in filters:
        form_properties[f["name"]] = f["schema"]
    nullable_number = {"type": "number", "nullable": True}
    nullable_int = {"type": "integer", "nullable": True}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "catalog_search",
            "version": "1",
            "description": "Hybrid keyword + image search over the shop's catalog. Errors are "
            '{"error": {"code", "message"}}.',
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": {
            "/api/search/": {
                "get": {
                    "operationId": "search",
                    "summary": "Text search with filters and facets",
                    "parameters": query_params + filters,
                    "responses": {**_ok(), **_errors(400, 429, 503)},
                }
            },
            "/api/search/image/": {
                "post": {
                    "operationId": "searchImage",
                    "summary": "Photo search, optionally refined by text",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": form_properties,
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "responses": {**_ok(), **_errors(400, 413, 415, 429, 503)},
                }
            },
            "/api/suggest/": {
                "get": {
                    "operationId": "suggest",
                    "summary": "Completions and products for the words being typed (the last one a prefix)",
                    "parameters": _suggest_parameters(),
                    "responses": {
                        "200": {
                            "description": "Completions ranked by the products they find, and a few products",
                            "content": {"application/json": {"schema": SUGGEST_RESPONSE}},
                        },
                        **_errors(400, 429, 503),
                    },
                }
            },
            "/api/similar/{type}/{id}/": {
                "get": {
                    "operationId": "similar",
                    "summary": "The products nearest one product (by its image vector, else its text vector)",
                    "parameters": _similar_parameters(),
                    "responses": {
                        "200": {
                            "description": "The nearest products passing the filters, nearest first; never itself",
                            "content": {"application/json": {"schema": SIMILAR_RESPONSE}},
                        },
                        **_errors(400, 404, 409, 429, 503),
                    },
                }
            },
            "/api/events/": {
                "post": {
                    "operationId": "event",
                    "summary": "A click on a result, or an add to cart from it (search analytics)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": EVENT}}},
                    "responses": {
                        "202": {
                            "description": "Recorded",
                            "content": {"application/json": {"schema": EVENT_RECORDED}},
                        },
                        **_errors(400, 415, 429),
                    },
                }
            },
            "/api/schema/": {
                "get": {
                    "operationId": "schema",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        }
                    },
                },
                "Facets": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["count"],
                            "properties": {"count": {"type": "integer"}},
                            "additionalProperties": True,
                        },
                    },
                },
                "Total": {
                    "type": "object",
                    "required": ["value", "relation"],
                    "description": "Products matched: exactly value (eq), or at least value (gte)",
                    "properties": {
                        "value": {"type": "integer", "minimum": 0},
                        "relation": {"type": "string", "enum": ["eq", "gte"]},
                    },
                },
                "Result": {
                    "type": "object",
                    "required": ["id", "type", "score", "scores", "ranks", "fields"],
                    "properties": {
                        "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                        "type": {"type": "string", "example": "shop.product"},
                        "score": {"type": "number"},
                        "scores": {
                            "type": "object",
                            "required": ["bm25", "vector"],
                            "properties": {"bm25": nullable_number, "vector": nullable_number},
                        },
                        "ranks": {
                            "type": "object",
                            "required": ["bm25", "vector"],
                            "properties": {"bm25": nullable_int, "vector": nullable_int},
                        },
                        "fields": {"type": "object", "additionalProperties": True},
                        "explain": {"type": "object", "additionalProperties": True},
                        "highlight": {
                            "type": "object",
                            "description": "With highlight=1: field -> HTML-escaped text, matched words in <mark>",
                            "additionalProperties": {"type": "string"},
                        },
                    },
                },
                "SearchResponse": {
                    "type": "object",
                    "required": ["query", "results", "facets", "total", "took_ms"],
                    "properties": {
                        "query": {
                            "type": "object",
                            "required": ["q", "mode", "fusion", "filters"],
                            "properties": {
                                "q": {"type": "string", "nullable": True},
                                "mode": {"type": "string"},
                                "fusion": {"type": "string"},
                                "sort": {"type": "string"},
                                "alpha": {"type": "number"},
                                "filters": {"type": "object", "additionalProperties": {"type": "array", "items": {}}},
                                "expanded": {
                                    "type": "object",
                                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                                },
                                "understood": {"type": "object", "additionalProperties": True},
                                "understanding": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["field", "lookup", "value", "words", "source", "applied"],
                                        "properties": {
                                            "field": {"type": "string"},
                                            "lookup": {"type": "string", "enum": ["exact", "gte", "lte"]},
                                            "value": {},
                                            "words": {"type": "string"},
                                            "source": {"type": "string"},
                                            "applied": {"type": "string", "enum": ["boost", "filter"]},
                                        },
                                    },
                                },
                                "corrected": {
                                    "type": "object",
                                    "properties": {
                                        "q": {"type": "string"},
                                        "words": {"type": "object", "additionalProperties": {"type": "string"}},
                                    },
                                },
                                "expansion": {
                                    "type": "object",
                                    "additionalProperties": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["word", "source", "cosine"],
                                            "properties": {
                                                "word": {"type": "string"},
                                                "source": {"type": "string"},
                                                "cosine": {"type": "number"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
                        "facets": {"$ref": "#/components/schemas/Facets"},
                        "total": {"$ref": "#/components/schemas/Total"},
                        "took_ms": {"type": "number"},
                        "warnings": {"type": "array", "items": {"type": "string"}},
                        "search_id": SEARCH_ID,
                    },
                },
            }
        },
    }
