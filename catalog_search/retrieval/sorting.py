"""Stage 5b: a sort other than relevance (``sort=price``, ``sort=-price``): the page ordered by a declared
sort field over the query's matched set, the set its facets count and ``total`` says the size of.

Each searched model gives its first ``offset + k`` matched objects by the field (NULLs last either way),
then by primary key, so the pages of one sort never repeat or skip an object; the models' lists are merged
by value, those without the field after every value (Elasticsearch's ``unmapped_type`` with ``missing:
_last``). A result keeps its relevance scores when it was a fused candidate, else 0 and nulls.
"""

from __future__ import annotations

import heapq
from typing import Any

from catalog_search.retrieval import bm25, facets
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.fusion import Fused
from catalog_search.retrieval.results import RETRIEVERS

Row = tuple[int, str, Any]  # document id, object id, value


def order(
    search: Search, ranked: list[Fused], *, matches: dict[str, bm25.Match] | None, ids: dict[str, list[str]]
) -> list[Fused]:
    """The first ``offset + k`` of the matched set (keyword ``matches`` and ``ids`` per index label) in the
    query's sort order, as fused items for ``resolve``."""
    query = search.query
    assert query.sort is not None
    lists: list[list[Row]] = []
    for index in query.indexes:
        rows = facets.sorted_matches(
            index,
            query.index_filters[index.label],
            field=query.sort.field,
            descending=query.sort.descending,
            match=(matches or {}).get(index.label),
            ids=ids.get(index.label, []),
            limit=query.offset + query.k + len(search.hidden),  # the page stays whole once rules.placed hides
        )
        for document_id, object_id, _ in rows:
            search.found.where[document_id] = (index, object_id)
        lists.append(rows)
    fused = {item.document_id: item for item in ranked}
    page = _merged(lists, descending=query.sort.descending)[: query.offset + query.k]
    return [fused.get(d) or Fused(d, 0.0, dict.fromkeys(RETRIEVERS), dict.fromkeys(RETRIEVERS)) for d, _, _ in page]


def _merged(lists: list[list[Row]], *, descending: bool) -> list[Row]:
    """One list from each model's (already in order): by value, those without one after; equal values keep
    the models' order. Within a model the database's order (its collation) is kept."""
    present = [[row for row in rows if row[2] is not None] for rows in lists]
    missing = [row for rows in lists for row in rows if row[2] is None]
    merged = heapq.merge(*present, key=lambda row: row[2], reverse=descending)
    return [*merged, *missing]
