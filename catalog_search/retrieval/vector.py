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
  vector) or, forced, lose recall in the iterative graph walk (docs/benchmarks.md, "Filtered ANN recall").

A query can target two columns with weights (text queries: text->image and text->text); each column
is searched and the union is re-scored as ``sum_c w_c * cos(q, v_c) / sum_c w_c`` over the columns a
document has (a product without an image is scored on its text vector alone). When the filter needs the
exact path (small, or rejecting a column's neighbourhood), one statement ranks the filtered rows by that
weighted score itself: exact, and one read of the rows instead of one per column plus the rescoring.

A ``fallback`` column keeps the rows that have none of the weighted columns: with text queries compared
to images only (TEXT_QUERY_IMAGE_WEIGHT 1.0), products without a photo are searched by their text
vector, as a lane of their own (its own partial HNSW index; a partial btree finds its rows for the exact
path, so that path reads only them). Text-to-text cosines run higher than text-to-image ones, so a lane
hit's score is its cosine minus the query's own offset between the two: the mean of (text - weighted
score) over the weighted lane's hits, which have both. Both lanes' top ``limit`` are exact under the
same paths, so their merge is the exact top ``limit`` of the calibrated scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from catalog_search import conf, databases
from catalog_search.retrieval.filters import Passing, Restriction, count_filtered
from catalog_search.sql import int_array, text_array, vector_literal

COLUMNS = ("image", "text")


@dataclass(frozen=True)
class Hit:
    document_id: int
    object_id: str
    score: float  # weighted cosine similarity
    similarities: dict[str, float]  # column -> cosine similarity


@dataclass(frozen=True)
class Lane:
    """The rows one walk compares: those with ``column``, and (the fallback lane) none of ``without``."""

    column: str
    without: tuple[str, ...] = ()

    def condition(self) -> str:
        return " AND ".join([f"e.{self.column} IS NOT NULL", *(f"e.{c} IS NULL" for c in self.without)])


@dataclass(frozen=True)
class _Space:
    """What a search compares: the query vector (pgvector's literal) with one encoder's stored vectors of
    one content type."""

    encoder_id: int
    dim: int
    content_type_id: int
    query: str

    def distance(self, column: str) -> str:
        return f"e.{column}::vector({self.dim}) <=> %(q)s::vector({self.dim})"

    def rows(self, condition: str) -> str:
        """FROM and WHERE over this space's rows that have ``condition``; binds %(ct)s."""
        return (
            f"FROM catalog_search_embedding e WHERE e.encoder_id = {int(self.encoder_id)} "
            f"AND e.content_type_id = %(ct)s AND {condition}"
        )

    def params(self, **more: object) -> dict:
        return {"q": self.query, "ct": self.content_type_id, **more}


def _nearest(space: _Space, lane: Lane, restriction: Restriction | None, limit: int) -> list[tuple[int, str, float]]:
    """The ``limit`` nearest rows (document id, object id, distance) of ``lane``; with a restriction, exact
    over its rows."""
    where, params = restriction.member("e.object_id") if restriction is not None else ("true", {})
    rows = (
        f"SELECT e.document_id, e.object_id, {space.distance(lane.column)} AS dist "
        f"{space.rows(lane.condition())} AND {where}"
    )
    if restriction is not None:
        # OFFSET 0 fences the planner off the HNSW index: a plain sort over the filtered rows.
        sql = f"SELECT document_id, object_id, dist FROM ({rows} OFFSET 0) c ORDER BY dist, document_id LIMIT %(limit)s"
    else:
        sql = (
            f"WITH c AS MATERIALIZED ({rows} ORDER BY dist LIMIT %(limit)s) "
            "SELECT document_id, object_id, dist FROM c ORDER BY dist, document_id"
        )
    with databases.connection().cursor() as cursor:
        cursor.execute(sql, space.params(limit=limit, **params))
        return cursor.fetchall()


def _over_fetch(
    space: _Space, lane: Lane, *, limit: int, max_depth: int, passing: Passing
) -> list[tuple[int, str, float]]:
    """The ``limit`` nearest rows passing the filter among the unfiltered nearest, or fewer if too few
    of those pass within ``max_depth`` rows.

    One walk of the HNSW index, read through a cursor: the first ``2 * limit`` rows (ef_search = that,
    pgvector's iterative scan past it) measure the share that passes; while too few have passed, the same
    walk goes on for as many more rows as that share says are needed (x 1.25), instead of a new, deeper
    walk from the entry point (which would read the first rows again). When the share says more than
    ``max_depth`` rows would be needed, it stops: the caller searches exactly."""
    first = min(2 * limit, max_depth)
    walked: list[tuple[int, str, float]] = []
    rows: list[tuple[int, str, float]] = []
    with databases.connection().cursor() as cursor:
        # One graph search returns at most ef_search rows (pgvector allows at most 1000); past them the
        # iterative scan that search() set up continues the walk.
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(min(first, 1000))])
        # The LIMIT makes the planner walk the index (a cursor reads only the rows it fetches).
        cursor.execute(
            f"DECLARE catalog_search_walk NO SCROLL CURSOR FOR SELECT e.document_id, e.object_id, "
            f"{space.distance(lane.column)} AS dist {space.rows(lane.condition())} "
            f"ORDER BY dist LIMIT {int(max_depth)}",
            space.params(),
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


def _sql_passing(restriction: Restriction) -> Passing:
    """A ``passing`` check from the restriction's SQL alone (callers without a queryset at hand)."""

    def passing(object_ids: list[str]) -> set[str]:
        sql, params = restriction.select()
        with databases.connection().cursor() as cursor:
            cursor.execute(
                f"SELECT x FROM unnest(%(ids)s::text[]) AS x WHERE x IN ({sql})",
                {"ids": text_array(object_ids), **params},
            )
            return {row[0] for row in cursor.fetchall()}

    return passing


def search(
    vector: np.ndarray,
    *,
    encoder_id: int,
    dim: int,
    content_type_id: int,
    weights: dict[str, float],
    restriction: Restriction | None,
    limit: int,
    passing: Passing | None = None,
    count: int | None = None,
    all_similarities: bool = True,
    fallback: str | None = None,
) -> list[Hit]:
    """The ``limit`` nearest documents to ``vector`` under ``weights`` (column -> weight) among the objects
    of ``restriction``, best first; rows with none of the weighted columns are searched by ``fallback``
    (a column) if given, their scores calibrated (module docstring).

    ``passing(object_ids)`` returns those of the given object ids that pass the filter (default: from the
    restriction's SQL); it is used on the over-fetch path only. ``count``: ``filters.count_filtered`` of
    the restriction with cap EXACT_SEARCH_MAX_ROWS, if the caller has it already. ``all_similarities=False``:
    a hit's ``similarities`` may hold only the searched columns (saves a statement when one column is)."""
    settings = conf.settings()
    space = _Space(encoder_id, dim, content_type_id, vector_literal(vector))
    exact_max = settings.EXACT_SEARCH_MAX_ROWS
    if count is None:
        count = count_filtered(restriction, exact_max)
    if count == 0:
        return []
    large = count is not None and count > exact_max
    searched = [c for c, w in weights.items() if w > 0]
    # Several columns over a restriction that needs the exact path: one statement scores its rows by the
    # weighted similarity itself (`_nearest_weighted`), instead of each column's exact top plus a rescoring
    # of their union (three statements, each reading the rows' vectors).
    if len(searched) > 1 and restriction is not None and not large:
        return _best(_nearest_weighted(space, weights, restriction, limit), limit)
    lanes = [Lane(c) for c in searched]
    if fallback and searched and fallback not in searched and _lane_has_rows(space, Lane(fallback, tuple(searched))):
        lanes.append(Lane(fallback, without=tuple(searched)))
    by_lane = _candidates(
        space, lanes, restriction=restriction, limit=limit, large=large, passing=passing, settings=settings
    )
    if by_lane is None:  # a column's walk fell short over several columns: exact, weighted
        assert restriction is not None
        return _best(_nearest_weighted(space, weights, restriction, limit), limit)
    main = {d: (o, dist) for lane, rows in by_lane.items() if not lane.without for d, o, dist in rows}
    spare = [row for lane, rows in by_lane.items() if lane.without for row in rows]
    hits = _weighted_hits(space, main, weights, all_similarities=all_similarities or bool(spare))
    if spare:
        hits += _fallback_hits(spare, hits, column=lanes[-1].column)
    return _best(hits, limit)


def _lane_has_rows(space: _Space, lane: Lane) -> bool:
    """Whether the fallback lane holds any row of this space: a probe of its partial btree (index only).
    Where every product has a photo the lane is empty and costs this probe alone; without it a large
    filter sent the empty lane to its exact path, which reads the filter's ids first (docs/benchmarks.md)."""
    with databases.connection().cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 {space.rows(' AND '.join(f'e.{c} IS NULL' for c in lane.without))})",
            space.params(),
        )
        return bool(cursor.fetchone()[0])


def _weighted_hits(
    space: _Space, candidates: dict[int, tuple[str, float]], weights: dict[str, float], *, all_similarities: bool
) -> list[Hit]:
    if not candidates:
        return []
    searched = [c for c, w in weights.items() if w > 0]
    if len(searched) == 1 and not all_similarities:
        # One column: its similarities are the search's own distances; no second pass over the vectors.
        (column,) = searched
        w = weights[column]  # w * s / w: the arithmetic of `_scored`, so both give the same scores to the bit
        return [Hit(d, o, w * (1 - dist) / w, {column: 1 - dist}) for d, (o, dist) in candidates.items()]
    return rescore(space, list(candidates), weights)


def _fallback_hits(rows: list[tuple[int, str, float]], weighted: list[Hit], *, column: str) -> list[Hit]:
    """The fallback lane's rows as hits, their cosine shifted onto the weighted lane's scale (this query's
    mean offset between the two over the weighted hits; none without weighted hits)."""
    offsets = [h.similarities[column] - h.score for h in weighted if column in h.similarities]
    offset = sum(offsets) / len(offsets) if offsets else 0.0
    return [Hit(d, o, (1 - dist) - offset, {column: 1 - dist}) for d, o, dist in rows]


def _best(hits: list[Hit], limit: int) -> list[Hit]:
    hits.sort(key=lambda h: (-h.score, h.document_id))
    return hits[:limit]


def _candidates(
    space: _Space,
    lanes: list[Lane],
    *,
    restriction: Restriction | None,
    limit: int,
    large: bool,
    passing: Passing | None,
    settings: conf.Settings,
) -> dict[Lane, list[tuple[int, str, float]]] | None:
    """Each lane's nearest rows (document id, object id, distance in its column); None when several
    columns are weighted and a walk over a large filter fell short in one of them (the caller then searches
    exactly). The fallback lane's rows are disjoint from the others: it goes exact on its own."""
    if restriction is not None and not large:
        # A small filter: exact over its rows (the caller weighs several columns in one statement), no
        # graph walk, so neither the HNSW settings nor their transaction (three round trips) are needed.
        return {lane: _nearest(space, lane, restriction, limit) for lane in lanes}
    max_depth = max(settings.FILTERED_ANN_DEPTH, limit)
    weighted = sum(1 for lane in lanes if not lane.without)
    found: dict[Lane, list[tuple[int, str, float]]] = {}
    with transaction.atomic(using=databases.alias()), databases.connection().cursor() as cursor:
        # ef_search bounds what one graph search returns (pgvector allows at most 1000); past it the scan
        # continues iteratively (relaxed order: rows are re-sorted by exact distance).
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.max_scan_tuples', %s, true)",
            [
                str(min(max(settings.HNSW_EF_SEARCH, limit), 1000)),
                str(max(settings.HNSW_MAX_SCAN_TUPLES, max_depth)),
            ],
        )
        for lane in lanes:
            rows: list[tuple[int, str, float]] = []
            if restriction is None:
                rows = _nearest(space, lane, None, limit)
            else:
                if large:
                    check = passing or _sql_passing(restriction)
                    rows = _over_fetch(space, lane, limit=limit, max_depth=max_depth, passing=check)
                if len(rows) < limit:  # a small filter, or one that rejects most of the query's neighbourhood
                    if weighted > 1 and not lane.without:
                        return None
                    rows = _nearest(space, lane, restriction, limit)
            found[lane] = rows
    return found


def _nearest_weighted(space: _Space, weights: dict[str, float], restriction: Restriction, limit: int) -> list[Hit]:
    """Exact over the restriction's rows: the ``limit`` best by the weighted similarity of several columns
    (``weights``; a row missing a column is scored on the others, as ``rescore`` scores it)."""
    where, params = restriction.member("e.object_id")
    used = {c: float(w) for c, w in weights.items() if w > 0}
    params.update({f"w_{c}": w for c, w in used.items()})
    sims = ", ".join(f"1 - ({space.distance(c)}) AS s_{c}" for c in COLUMNS)
    weighted = " + ".join(f"coalesce(%(w_{c})s * s_{c}, 0)" for c in used)
    present = " + ".join(f"CASE WHEN s_{c} IS NULL THEN 0 ELSE %(w_{c})s END" for c in used)
    any_column = " OR ".join(f"e.{c} IS NOT NULL" for c in used)
    sql = (
        f"SELECT document_id, object_id, {', '.join(f's_{c}' for c in COLUMNS)} FROM ("
        f"SELECT e.document_id, e.object_id, {sims} {space.rows(f'({any_column})')} AND {where} "
        # OFFSET 0: a plain sort over the filtered rows, as in `_nearest`.
        f"OFFSET 0) c ORDER BY ({weighted}) / ({present}) DESC, document_id LIMIT %(limit)s"
    )
    with databases.connection().cursor() as cursor:
        cursor.execute(sql, space.params(limit=limit, **params))
        rows = cursor.fetchall()
    return _scored(rows, weights)


def rescore(space: _Space, document_ids: list[int], weights: dict[str, float]) -> list[Hit]:
    """Exact similarities of the given documents to the query, combined with ``weights``."""
    sims = ", ".join(f"1 - ({space.distance(c)})" for c in COLUMNS)
    with databases.connection().cursor() as cursor:
        cursor.execute(
            f"SELECT e.document_id, e.object_id, {sims} FROM catalog_search_embedding e "
            f"WHERE e.encoder_id = {int(space.encoder_id)} AND e.document_id = ANY(%(ids)s::bigint[])",
            {"q": space.query, "ids": int_array(document_ids)},
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
