"""Nearest-neighbour retrieval over the stored embeddings of the active encoder.

Filters never drop a true neighbour: a search returns the ``limit`` nearest rows that pass the filter.
Three paths, chosen per query (docs/architecture.md, "Vector retrieval"):

- **unfiltered**: the HNSW index, plain.
- **small filter** (a bounded count finds at most EXACT_SEARCH_MAX_ROWS objects): exact search over
  exactly those rows, a sort by true distance.
- **large filter**: *over-fetch*: the HNSW index walked without the filter for the ``2 * limit``
  nearest rows (no filter in the statement, so the planner always walks the graph), then the filter
  checked on those candidates only (the caller's ``passing``: an indexed primary-key lookup on the
  shop's table). If at least ``limit`` pass, they are the answer, because the filtered top ``limit`` of
  a correct unfiltered top D is the filtered top ``limit``; if too few pass, the same walk goes on (a
  cursor over one iterative index scan), as far as the share that passed says is needed (at most
  FILTERED_ANN_DEPTH rows in all); if that cannot be enough (a filter that rejects the query's
  neighbourhood), the exact path answers. Putting the filter inside the HNSW
  statement instead made PostgreSQL either skip the index (a hash semi-join reading every filtered
  vector out of TOAST: 100-400 ms at 100k) or, forced, lose recall in the iterative graph walk
  (docs/benchmarks.md, "Filtered ANN recall").

A query can target two columns with weights (text queries: text->image and text->text); each column
is searched and the union is re-scored as ``sum_c w_c * cos(q, v_c) / sum_c w_c`` over the columns a
document has (a product without an image is scored on its text vector alone). When the filter needs the
exact path (small, or rejecting a column's neighbourhood), one statement ranks the filtered rows by that
weighted score itself: exact, and one read of the rows instead of one per column plus the rescoring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction

from catalog_search import conf
from catalog_search.retrieval.bm25 import _named
from catalog_search.retrieval.filters import member
from catalog_search.sql import int_array, text_array, vector_literal

COLUMNS = ("image", "text")


@dataclass(frozen=True)
class Hit:
    document_id: int
    object_id: str
    score: float  # weighted cosine similarity
    similarities: dict[str, float]  # column -> cosine similarity


def _filter_clause(filter_sql: tuple[str, list] | None) -> tuple[str, dict]:
    """``AND`` the filter's object ids, as an array the ``catalog_search_emb_obj`` index looks up: only
    the filtered rows are read, by index, where ``IN (subquery)`` let the planner hash-join a scan of the
    whole table (2x slower over 12k filtered rows at 100k products with vectors in the row)."""
    sql, params = _named(filter_sql)
    clause = f"AND {member('e.object_id', sql)}" if sql else ""
    return clause, {f"f{i}": v for i, v in enumerate(params)}


def _estimated_above(cursor, sql: str, params: list, cap: int) -> bool:
    """PostgreSQL's own row estimate for the filter (its plan, ~1 ms) is above ``cap``."""
    cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
    plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # a driver that does not decode json
        plan = json.loads(plan)
    return plan[0]["Plan"]["Plan Rows"] > cap


def filter_ids(filter_sql: tuple[str, list], cap: int) -> list[str] | None:
    """The object ids passing the filter when there are at most ``cap`` of them, else None.

    The search uses them in place of the filter's SQL (``filters.ids_filter``): the count it needs anyway,
    and every statement then tests the rows against a list, not a subquery (``filters.member``). Trusts
    the row estimate in one direction only, as ``count_filtered`` does."""
    sql, params = filter_sql
    with connection.cursor() as cursor:
        if _estimated_above(cursor, sql, params, cap):
            return None
        cursor.execute(f"{sql} LIMIT {int(cap) + 1}", params)
        ids = [row[0] for row in cursor.fetchall()]
    return ids if len(ids) <= cap else None


def count_filtered(filter_sql: tuple[str, list] | None, cap: int) -> int | None:
    """How many objects pass the filter, counting at most ``cap + 1`` (None when unfiltered).

    When PostgreSQL's own row estimate for the filter (its plan, ~1 ms) is above ``cap``, the answer is
    ``cap + 1`` without counting: counting the first ``cap + 1`` rows of a broad filter costs 5-7 ms at
    100k products. Only the large-filter path can be chosen on an estimate: if it was too high, the
    over-fetch still answers exactly (its filter check, or its fallback to the exact search when too few
    of the walked rows pass; a few ms slower than counting, never wrong); an estimate at or below ``cap``
    is always checked by counting, since the exact path over a filter that is really large would not be
    bounded."""
    if filter_sql is None:
        return None
    sql, params = filter_sql
    with connection.cursor() as cursor:
        if _estimated_above(cursor, sql, params, cap):
            return int(cap) + 1
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
) -> list[tuple[int, str, float]]:
    """The ``limit`` nearest rows (document id, object id, distance) by ``column``; with a filter, exact
    over the filtered rows."""
    where, params = _filter_clause(filter_sql)
    params.update({"q": query, "ct": content_type_id, "limit": limit})
    rows = (
        f"SELECT e.document_id, e.object_id, e.{column}::vector({dim}) <=> %(q)s::vector({dim}) AS dist "
        f"FROM catalog_search_embedding e WHERE e.encoder_id = {int(encoder_id)} AND e.{column} IS NOT NULL "
        f"AND e.content_type_id = %(ct)s {where}"
    )
    if filter_sql is not None:
        # OFFSET 0 fences the planner off the HNSW index: a plain sort over the filtered rows.
        sql = f"SELECT document_id, object_id, dist FROM ({rows} OFFSET 0) c ORDER BY dist, document_id LIMIT %(limit)s"
    else:
        sql = (
            f"WITH c AS MATERIALIZED ({rows} ORDER BY dist LIMIT %(limit)s) "
            "SELECT document_id, object_id, dist FROM c ORDER BY dist, document_id"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _over_fetch(
    column: str,
    encoder_id: int,
    dim: int,
    content_type_id: int,
    query: str,
    limit: int,
    max_depth: int,
    passing: Callable[[list[str]], Collection[str]],
) -> list[tuple[int, str, float]]:
    """The ``limit`` nearest rows passing the filter among the unfiltered nearest, or fewer if too few
    of those pass within ``max_depth`` rows.

    One walk of the HNSW index, read through a cursor: the first ``2 * limit`` rows (ef_search = that,
    pgvector's iterative scan past it) measure the share that passes; while too few have passed, the same
    walk goes on for as many more rows as that share says are needed (x 1.25), instead of a new, deeper
    walk from the entry point (a 400-row walk followed by a 1,100-row one re-read the first 400). When the
    share says more than ``max_depth`` rows would be needed, it stops: the caller searches exactly."""
    first = min(2 * limit, max_depth)
    walked: list[tuple[int, str, float]] = []
    rows: list[tuple[int, str, float]] = []
    with connection.cursor() as cursor:
        # One graph search returns at most ef_search rows (pgvector allows at most 1000); past them the
        # iterative scan that search() set up continues the walk.
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(min(first, 1000))])
        # The LIMIT makes the planner walk the index (a cursor reads only the rows it fetches).
        cursor.execute(
            f"DECLARE catalog_search_walk NO SCROLL CURSOR FOR SELECT e.document_id, e.object_id, "
            f"e.{column}::vector({dim}) <=> %(q)s::vector({dim}) AS dist FROM catalog_search_embedding e "
            f"WHERE e.encoder_id = {int(encoder_id)} AND e.{column} IS NOT NULL AND e.content_type_id = %(ct)s "
            f"ORDER BY dist LIMIT {int(max_depth)}",
            {"q": query, "ct": content_type_id},
        )
        batch = first
        while batch > 0:
            cursor.execute(f"FETCH FORWARD {int(batch)} FROM catalog_search_walk")
            got = cursor.fetchall()
            walked += got
            allowed = passing([oid for _, oid, _ in got])
            rows += [row for row in got if row[1] in allowed]
            if len(rows) >= limit or len(got) < batch or not rows or len(walked) >= max_depth:
                break
            needed = math.ceil(limit * len(walked) / len(rows) * 1.25)  # 1.25: the share varies along the walk
            if needed > max_depth:
                break
            batch = needed - len(walked)
        # Not in a `finally`: after an error the transaction is aborted (and ends the cursor) anyway.
        cursor.execute("CLOSE catalog_search_walk")
    # The iterative scan returns rows in roughly nearest-first order: sort the passing ones exactly.
    rows.sort(key=lambda row: (row[2], row[0]))
    return rows[:limit]


def _sql_passing(filter_sql: tuple[str, list]) -> Callable[[list[str]], set[str]]:
    """A ``passing`` check from the filter's SQL alone (callers without a queryset at hand)."""

    def passing(object_ids: list[str]) -> set[str]:
        sql, params = _named(filter_sql)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT x FROM unnest(%(ids)s::text[]) AS x WHERE x IN ({sql})",
                {"ids": text_array(object_ids), **{f"f{i}": v for i, v in enumerate(params)}},
            )
            return {row[0] for row in cursor.fetchall()}

    return passing


def search(
    encoder_id: int,
    dim: int,
    content_type_id: int,
    vector: np.ndarray,
    weights: dict[str, float],
    filter_sql: tuple[str, list] | None,
    limit: int,
    passing: Callable[[list[str]], Collection[str]] | None = None,
    count: int | None = None,
    all_similarities: bool = True,
) -> list[Hit]:
    """The ``limit`` nearest documents to ``vector`` under ``weights`` (column -> weight), best first.

    ``passing(object_ids)`` returns those of the given object ids that pass the filter (default: from
    ``filter_sql``); it is used on the over-fetch path only. ``count``: ``count_filtered`` of the
    filter with cap EXACT_SEARCH_MAX_ROWS, if the caller has it already. ``all_similarities=False``: a
    hit's ``similarities`` may hold only the searched columns (saves a statement when one column is)."""
    query = vector_literal(vector)
    exact_max = int(conf.get("EXACT_SEARCH_MAX_ROWS"))
    if count is None:
        count = count_filtered(filter_sql, exact_max)
    if count == 0:
        return []
    max_depth = max(int(conf.get("FILTERED_ANN_DEPTH")), limit)
    searched = [c for c, w in weights.items() if w > 0]
    # Several columns over a filter that needs the exact path: one statement scores the filtered rows by
    # the weighted similarity itself (`_nearest_weighted`), instead of each column's exact top plus a
    # rescoring of their union (three statements, each reading the filtered rows' vectors).
    exact_weighted = len(searched) > 1 and filter_sql is not None and not (count is not None and count > exact_max)
    candidates: dict[int, tuple[str, float]] = {}  # document id -> (object id, distance in its column)
    with transaction.atomic(), connection.cursor() as cursor:
        # ef_search bounds what one graph search returns (pgvector allows at most 1000); past it the scan
        # continues iteratively (relaxed order: rows are re-sorted by exact distance).
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.max_scan_tuples', %s, true)",
            [
                str(min(max(int(conf.get("HNSW_EF_SEARCH")), limit), 1000)),
                str(max(int(conf.get("HNSW_MAX_SCAN_TUPLES")), max_depth)),
            ],
        )
        for column in [] if exact_weighted else searched:
            if filter_sql is None:
                candidates.update(
                    (d, (o, dist))
                    for d, o, dist in _nearest(column, encoder_id, dim, content_type_id, query, None, limit)
                )
                continue
            rows: list[tuple[int, str, float]] = []
            if count is not None and count > exact_max:
                rows = _over_fetch(
                    column,
                    encoder_id,
                    dim,
                    content_type_id,
                    query,
                    limit,
                    max_depth,
                    passing or _sql_passing(filter_sql),
                )
            if len(rows) < limit:  # a small filter, or one that rejects most of the query's neighbourhood
                if len(searched) > 1:
                    exact_weighted = True
                    break
                rows = _nearest(column, encoder_id, dim, content_type_id, query, filter_sql, limit)
            candidates.update((d, (o, dist)) for d, o, dist in rows)
    if exact_weighted and filter_sql is not None:
        hits = _nearest_weighted(encoder_id, dim, content_type_id, query, weights, filter_sql, limit)
    elif not candidates:
        return []
    elif len(searched) == 1 and not all_similarities:
        # One column: its similarities are the search's own distances; no second pass over the vectors.
        (column,) = searched
        w = weights[column]
        hits = [Hit(d, o, w * (1 - dist) / w, {column: 1 - dist}) for d, (o, dist) in candidates.items()]
    else:
        hits = rescore(encoder_id, dim, query, list(candidates), weights)
    hits.sort(key=lambda h: (-h.score, h.document_id))
    return hits[:limit]


def _nearest_weighted(
    encoder_id: int,
    dim: int,
    content_type_id: int,
    query: str,
    weights: dict[str, float],
    filter_sql: tuple[str, list],
    limit: int,
) -> list[Hit]:
    """Exact over the filtered rows: the ``limit`` best by the weighted similarity of several columns
    (``weights``; a row missing a column is scored on the others, as ``rescore`` scores it)."""
    where, params = _filter_clause(filter_sql)
    params.update({"q": query, "ct": content_type_id, "limit": limit})
    used = {c: float(w) for c, w in weights.items() if w > 0}
    for c, w in used.items():
        params[f"w_{c}"] = w
    sims = ", ".join(f"1 - (e.{c}::vector({dim}) <=> %(q)s::vector({dim})) AS s_{c}" for c in COLUMNS)
    weighted = " + ".join(f"coalesce(%(w_{c})s * s_{c}, 0)" for c in used)
    present = " + ".join(f"CASE WHEN s_{c} IS NULL THEN 0 ELSE %(w_{c})s END" for c in used)
    any_column = " OR ".join(f"e.{c} IS NOT NULL" for c in used)
    sql = (
        f"SELECT document_id, object_id, {', '.join(f's_{c}' for c in COLUMNS)} FROM ("
        f"SELECT e.document_id, e.object_id, {sims} FROM catalog_search_embedding e "
        f"WHERE e.encoder_id = {int(encoder_id)} AND e.content_type_id = %(ct)s AND ({any_column}) {where} "
        # OFFSET 0: a plain sort over the filtered rows, as in `_nearest`.
        f"OFFSET 0) c ORDER BY ({weighted}) / ({present}) DESC, document_id LIMIT %(limit)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return _scored(rows, weights)


def rescore(encoder_id: int, dim: int, query: str, document_ids: list[int], weights: dict[str, float]) -> list[Hit]:
    """Exact similarities of the given documents to the query, combined with ``weights``."""
    sims = ", ".join(f"1 - ({c}::vector({dim}) <=> %(q)s::vector({dim}))" for c in COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT document_id, object_id, {sims} FROM catalog_search_embedding "
            f"WHERE encoder_id = {int(encoder_id)} AND document_id = ANY(%(ids)s::bigint[])",
            {"q": query, "ids": int_array(document_ids)},
        )
        rows = cursor.fetchall()
    return _scored(rows, weights)


def _scored(rows: list[tuple], weights: dict[str, float]) -> list[Hit]:
    """Hits from rows (document id, object id, one similarity per column of COLUMNS, NULL where absent):
    ``sum_c w_c * sim_c / sum_c w_c`` over the weighted columns a row has."""
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
