"""Facet counts over the matched set.

The matched set of a query is every object that passes its filters and was retrieved by at least
one active signal: all documents containing any query term (BM25; every match, not only the top
candidates) plus the vector signal's candidate list (its top CANDIDATES). Counts are per distinct
value for a FacetField and per bucket for a RangeFacet, summed over the searched models.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db import connection

from catalog_search.registry import FacetField, RangeFacet, SearchIndex, _jsonable
from catalog_search.retrieval import bm25
from catalog_search.retrieval.filters import values_sql
from catalog_search.retrieval.query import Filter


def _matched_clause(index: SearchIndex, terms: list[str] | None, pool: list[str]) -> tuple[str, dict]:
    parts, params = [], {"pool": pool}
    if terms:
        sql, bm25_params = bm25.matched_object_ids_sql(index.content_type.pk, terms, None)
        parts.append(sql)
        params.update(bm25_params)
    parts.append("SELECT unnest(%(pool)s::text[])")
    return " UNION ALL ".join(f"({p})" for p in parts), params


def _facet_rows(index, filters, facet, matched_sql, matched_params) -> list[tuple[Any, int]]:
    sql, params = bm25._named(values_sql(index, filters, facet.name), prefix="v")
    params_all = {**matched_params, **{f"v{i}": v for i, v in enumerate(params)}}
    if isinstance(facet, RangeFacet):
        params_all["bounds"] = [float(b) for b in facet.bounds]
        select, group = "width_bucket(f.val::float8, %(bounds)s::float8[])", "1"
    else:
        select, group = "f.val", "1"
    query = (
        f"SELECT {select}, count(*) FROM ({sql}) AS f(val, oid) "
        f"WHERE f.val IS NOT NULL AND f.oid IN ({matched_sql}) GROUP BY {group}"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, params_all)
        return cursor.fetchall()


def count(
    indexes: list[SearchIndex],
    index_filters: dict[str, list[Filter]],
    terms: list[str] | None,
    pools: dict[str, list[str]],
) -> dict[str, list[dict[str, Any]]]:
    """Facet counts; ``terms`` are the BM25 query terms (None when BM25 is off), ``pools`` the vector
    candidates' object ids per index label."""
    values: dict[str, Counter] = {}
    buckets: dict[str, tuple[list[float], Counter]] = {}
    order: list[str] = []
    for index in indexes:
        matched_sql, matched_params = _matched_clause(index, terms, pools.get(index.label, []))
        for facet in index.facets:
            if facet.name not in order:
                order.append(facet.name)
            rows = _facet_rows(index, index_filters[index.label], facet, matched_sql, matched_params)
            if isinstance(facet, RangeFacet):
                _bounds, counter = buckets.setdefault(facet.name, (list(facet.bounds), Counter()))
                counter.update({int(b): n for b, n in rows})
            else:
                values.setdefault(facet.name, Counter()).update({_jsonable(v): n for v, n in rows})
    out: dict[str, list[dict[str, Any]]] = {}
    sizes = {f.name: f.size for index in indexes for f in index.facets if isinstance(f, FacetField)}
    for name in order:
        if name in buckets:
            bounds, counter = buckets[name]
            out[name] = [
                {
                    "min": bounds[i - 1],
                    "max": bounds[i] if i < len(bounds) else None,
                    "count": counter.get(i, 0),
                }
                for i in range(1, len(bounds) + 1)
            ]
        else:
            ranked = sorted(values[name].items(), key=lambda item: (-item[1], str(item[0])))
            out[name] = [{"value": v, "count": n} for v, n in ranked[: sizes.get(name, 20)]]
    return out
