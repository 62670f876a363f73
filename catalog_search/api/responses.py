"""Response shapes of the contract (docs/api.md)."""

from __future__ import annotations

from typing import Any

from catalog_search.retrieval.results import SearchHit, SearchResults


def serialize_hit(hit: SearchHit) -> dict[str, Any]:
    data = {
        "id": hit.id if isinstance(hit.id, int | str) else str(hit.id),
        "type": hit.type,
        "score": round(hit.score, 6),
        "scores": {k: None if v is None else round(v, 6) for k, v in hit.scores.items()},
        "ranks": hit.ranks,
        "fields": hit.fields,
    }
    if hit.explain is not None:
        data["explain"] = hit.explain
    if hit.highlights is not None:
        data["highlight"] = hit.highlights
    return data


def serialize_results(results: SearchResults) -> dict[str, Any]:
    data = {
        "query": results.query,
        "results": [serialize_hit(hit) for hit in results.results],
        "facets": results.facets,
        "total": results.total.as_dict(),
        "took_ms": results.took_ms,
    }
    if results.warnings:
        data["warnings"] = results.warnings
    return data
