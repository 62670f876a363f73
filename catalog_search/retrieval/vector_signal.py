"""Stage 3: the vector signal: the nearest products to the query vector in one index, its filter applied
inside the search (retrieval/vector.py)."""

from __future__ import annotations

import numpy as np

from catalog_search.registry import SearchIndex
from catalog_search.retrieval import vector
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.filters import FilterPlan


def column_weights(search: Search, index: SearchIndex) -> dict[str, float]:
    """Which stored vectors the query vector is compared with."""
    if not index.image_field:
        return {"text": 1.0}
    if search.query.image is not None:
        return {"image": 1.0}
    w = search.settings.TEXT_QUERY_IMAGE_WEIGHT
    return {"image": w, "text": 1.0 - w}


def fallback_column(search: Search, index: SearchIndex) -> str | None:
    """For text queries, what a product without an image is compared by: its text vector."""
    return "text" if index.image_field and search.query.image is None else None


def nearest(
    search: Search,
    index: SearchIndex,
    plan: FilterPlan,
    query_vector: np.ndarray,
    *,
    all_similarities: bool,
    limit: int | None = None,
) -> list[vector.Hit]:
    """The ``limit`` (default ``search.depth``) nearest products to ``query_vector`` passing ``plan``'s
    filters."""
    row, _ = search.encoder
    return vector.search(
        query_vector,
        encoder_id=row.pk,
        dim=row.dim,
        content_type_id=index.content_type.pk,
        weights=column_weights(search, index),
        restriction=plan.restriction,
        limit=limit or search.depth,
        passing=plan.passing,
        count=plan.count,
        all_similarities=all_similarities,
        fallback=fallback_column(search, index),
    )


def retrieve(search: Search, index: SearchIndex, plan: FilterPlan) -> None:
    """The index's vector candidates, added to ``search.found``."""
    if search.query_vector is None or search.encoder is None:
        return
    hits = nearest(search, index, plan, search.query_vector, all_similarities=search.query.explain)
    found = search.found
    found.vector_ids[index.label] = [h.object_id for h in hits]
    found.vector_documents[index.label] = [h.document_id for h in hits]
    for hit in hits:
        found.vector.append((hit.document_id, hit.score))
        found.where[hit.document_id] = (index, hit.object_id)
        found.similarities[hit.document_id] = hit.similarities
