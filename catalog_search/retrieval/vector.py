"""Nearest-neighbour retrieval over the stored embeddings of the active encoder.

Filters sit inside the ANN query. A filter that matches few rows (at most EXACT_SEARCH_MAX_ROWS) is
searched exactly over those rows; otherwise the HNSW index is scanned with pgvector's iterative
scan (``hnsw.iterative_scan = relaxed_order``), which keeps walking the graph until ``limit`` rows
pass the filter, and the hits are re-sorted by exact distance.

A query can target two columns with weights (text queries: text->image and text->text); each column
is searched and the union is re-scored as ``sum_c w_c * cos(q, v_c) / sum_c w_c`` over the columns a
document has (a product without an image is scored on its text vector alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction

from catalog_search import conf
from catalog_search.indexing import vector_literal
from catalog_search.retrieval.bm25 import _named

COLUMNS = ("image", "text")


@dataclass(frozen=True)
class Hit:
    document_id: int
    object_id: str
    score: float  # weighted cosine similarity
    similarities: dict[str, float]  # column -> cosine similarity


def _filter_clause(filter_sql: tuple[str, list] | None) -> tuple[str, dict]:
    sql, params = _named(filter_sql)
    return (f"AND e.object_id IN ({sql})" if sql else ""), {f"f{i}": v for i, v in enumerate(params)}


def count_filtered(filter_sql: tuple[str, list] | None, cap: int) -> int | None:
    """How many objects pass the filter, counting at most ``cap + 1`` (None when unfiltered)."""
    if filter_sql is None:
        return None
    sql, params = filter_sql
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql} LIMIT {int(cap) + 1}) f", params)
        return int(cursor.fetchone()[0])


def _nearest(
    column: str,
    encoder_id: int,
    dim: int,
    content_type_id: int,
    query: str,
    filter_sql: tuple[str, list] | None,
    limit: int,
    exact: bool,
) -> list[tuple[int, str]]:
    where, params = _filter_clause(filter_sql)
    params.update({"q": query, "ct": content_type_id, "limit": limit})
    rows = (
        f"SELECT e.document_id, e.object_id, e.{column}::vector({dim}) <=> %(q)s::vector({dim}) AS dist "
        f"FROM catalog_search_embedding e WHERE e.encoder_id = {int(encoder_id)} AND e.{column} IS NOT NULL "
        f"AND e.content_type_id = %(ct)s {where}"
    )
    if exact:
        # OFFSET 0 fences the planner off the HNSW index: a plain sort over the filtered rows.
        sql = f"SELECT document_id, object_id FROM ({rows} OFFSET 0) c ORDER BY dist, document_id LIMIT %(limit)s"
    else:
        sql = (
            f"WITH c AS MATERIALIZED ({rows} ORDER BY dist LIMIT %(limit)s) "
            "SELECT document_id, object_id FROM c ORDER BY dist, document_id"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def search(
    encoder_id: int,
    dim: int,
    content_type_id: int,
    vector: np.ndarray,
    weights: dict[str, float],
    filter_sql: tuple[str, list] | None,
    limit: int,
) -> list[Hit]:
    """The ``limit`` nearest documents to ``vector`` under ``weights`` (column -> weight), best first."""
    query = vector_literal(vector)
    count = count_filtered(filter_sql, conf.get("EXACT_SEARCH_MAX_ROWS"))
    exact = count is not None and count <= conf.get("EXACT_SEARCH_MAX_ROWS")
    if count == 0:
        return []
    candidates: dict[int, str] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.max_scan_tuples', %s, true)",
            [str(max(int(conf.get("HNSW_EF_SEARCH")), limit)), str(int(conf.get("HNSW_MAX_SCAN_TUPLES")))],
        )
        for column, weight in weights.items():
            if weight > 0:
                rows = _nearest(column, encoder_id, dim, content_type_id, query, filter_sql, limit, exact)
                candidates.update(rows)
    if not candidates:
        return []
    hits = rescore(encoder_id, dim, query, list(candidates), weights)
    hits.sort(key=lambda h: (-h.score, h.document_id))
    return hits[:limit]


def rescore(encoder_id: int, dim: int, query: str, document_ids: list[int], weights: dict[str, float]) -> list[Hit]:
    """Exact similarities of the given documents to the query, combined with ``weights``."""
    sims = ", ".join(f"1 - ({c}::vector({dim}) <=> %(q)s::vector({dim}))" for c in COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT document_id, object_id, {sims} FROM catalog_search_embedding "
            f"WHERE encoder_id = {int(encoder_id)} AND document_id = ANY(%(ids)s)",
            {"q": query, "ids": document_ids},
        )
        rows = cursor.fetchall()
    hits = []
    for doc_id, oid, *values in rows:
        similarities = {c: float(v) for c, v in zip(COLUMNS, values, strict=True) if v is not None}
        present = {c: w for c, w in weights.items() if c in similarities and w > 0}
        total = sum(present.values())
        if not total:
            continue
        score = sum(w * similarities[c] for c, w in present.items()) / total
        hits.append(Hit(doc_id, oid, score, similarities))
    return hits
