"""Facet counts over the matched set.

The matched set of a query is every object that passes its filters and was retrieved by at least
one active signal: every keyword match (BM25's matching documents, those with MINIMUM_SHOULD_MATCH of the
query's terms; every match, not only the top candidates) plus the vector signal's candidate list (its top
CANDIDATES). Counts are per distinct
value for a FacetField and per bucket for a RangeFacet, summed over the searched models. With
``CATALOG_SEARCH["FACETS_OVER"] = "results"`` the matched set is the fused candidates instead: the
results the query can page through.

Cost: the matched set is computed once per model (a materialized CTE) and every facet is counted in
the same scan of the filtered shop table (GROUPING SETS), so adding a facet adds a hash aggregate, not
another pass over all BM25 matches (docs/benchmarks.md, search latency).

``keyword_matches_and_counts`` does the keyword retrieval in that same statement: the BM25 scores of
every matching document are what the matched set is made of, and the filtered shop rows the facets
read are exactly the matches passing the filters, so the best of them are the keyword signal's
candidates. One read of the postings and of the shop rows instead of two.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet, FieldDoesNotExist
from django.db import connection, models
from django.db.models import BooleanField, F, Func

from catalog_search.registry import FacetField, RangeFacet, SearchIndex, jsonable
from catalog_search.retrieval import bm25
from catalog_search.retrieval.filters import Restriction, filtered_queryset
from catalog_search.retrieval.query import Filter
from catalog_search.sql import named, text_array

Facet = FacetField | RangeFacet
# CATALOG_SEARCH["FACETS_OVER"]: "matches" counts the matched set above; "results" only the fused candidates
# (every result the query can page through), a few hundred objects whatever the catalog size.
SCOPES = ("matches", "results")


class _InMatched(Func):
    """``<pk> = ANY(ARRAY(<the ids of the query's matched CTE>))``, the ids deduplicated first when
    ``distinct`` is "DISTINCT"; only inside ``_count_group``."""

    template = "%(expressions)s = ANY(ARRAY(SELECT %(distinct)s CAST(oid AS %(pk_type)s) FROM matched))"
    output_field = BooleanField()


def _matched_clause(
    match: bm25.Match | None, vector_ids: list[str], restriction: Restriction | None = None
) -> tuple[str, dict]:
    parts, params = [], {"pool": text_array(vector_ids)}
    if match is not None and match.terms:
        sql, bm25_params = bm25.matched_object_ids_sql(match, restriction)
        parts.append(sql)
        params.update(bm25_params)
    parts.append("SELECT unnest(%(pool)s::text[])")
    return " UNION ALL ".join(f"({p})" for p in parts), params


def _multivalued(model: type[models.Model], path: str) -> bool:
    """Whether ``path`` crosses a to-many relation (one object can then have several values)."""
    for part in path.split("__"):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False


def _facet_groups(index: SearchIndex) -> list[list[Facet]]:
    """Facets counted together in one query. Single-valued paths share one scan of the shop's table;
    a to-many path gets its own query (counted together, two such paths would multiply rows)."""
    single = [f for f in index.facets if not _multivalued(index.model, f.name)]
    return ([single] if single else []) + [[f] for f in index.facets if f not in single]


@dataclass(frozen=True)
class _Keywords:
    """BM25 inside the facets' statement: ``sql`` scores every matching document (document_id,
    object_id, score); the ``limit`` best of those passing the filters are returned."""

    sql: str
    params: dict
    limit: int


def _count_group(
    index: SearchIndex,
    filters: list[Filter],
    group: list[Facet],
    *,
    matched_sql: str | None,
    matched_params: dict,
    keywords: _Keywords | None = None,
) -> tuple[list[list[tuple[Any, int]]], list[bm25.Hit]]:
    """Rows (value or bucket, count) per facet of ``group``: one scan of the filtered shop table joined
    with the matched set (computed once), grouped by every facet at once with GROUPING SETS. With
    ``keywords``, the matched set is their scored documents, and the best scored documents among the
    rows read are returned too."""
    # The matched ids, in the primary key's own type, as one array: PostgreSQL fetches exactly those rows
    # through the primary key index in table order (a bitmap scan) instead of scanning every row a broad
    # filter keeps, or probing the index once per matched object (docs/benchmarks.md).
    pk_type = index.model._meta.pk.rel_db_type(connection)
    # An id twice in the array still fetches its row once. Scored documents are distinct, so their ids are
    # not deduplicated first (a sort saved); the postings' ids (one per matching term) are.
    distinct = "" if keywords else "DISTINCT"
    queryset = filtered_queryset(index, filters).filter(_InMatched(F("pk"), pk_type=pk_type, distinct=distinct))
    queryset = queryset.order_by()
    values = queryset.values_list(*(["pk"] if keywords else []), *(f.name for f in group))
    try:
        values_sql, values_params = named(*values.query.sql_with_params(), prefix="v")
    except EmptyResultSet:  # a filter nothing can match
        return [[] for _ in group], []
    counts, count_params = _grouping_sets(group)
    params = {**matched_params, **values_params, **count_params}
    columns = ", ".join(f"c{i}" for i in range(len(group)))
    if keywords is None:
        query = f"WITH matched AS MATERIALIZED (SELECT m.oid FROM ({matched_sql}) AS m(oid)) " + counts.replace(
            "<source>", f"({values_sql}) AS v({columns})"
        )
    else:
        query = _with_keywords(keywords.sql, counts, values_sql, columns=columns, size=len(group), pk_type=pk_type)
        params.update(keywords.params, keywords_limit=keywords.limit)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return _read(cursor.fetchall(), len(group), with_keywords=keywords is not None)


def _grouping_sets(group: list[Facet]) -> tuple[str, dict]:
    """SQL counting each facet of ``group`` (a value per row, or a bucket for a RangeFacet) over the rows of
    ``<source>`` (columns c0, c1, ...), all in one pass with GROUPING SETS; with its params."""
    keys, params = [], {}
    for i, facet in enumerate(group):
        if isinstance(facet, RangeFacet):
            params[f"bounds{i}"] = [float(b) for b in facet.bounds]
            keys.append(f"width_bucket(v.c{i}::float8, %(bounds{i})s::float8[]) AS g{i}")
        else:
            keys.append(f"v.c{i} AS g{i}")
    names = ", ".join(f"g{i}" for i in range(len(group)))
    sets = ", ".join(f"(g{i})" for i in range(len(group)))
    sql = f"SELECT {names}, GROUPING({names}), count(*) FROM (SELECT {', '.join(keys)} FROM <source>) AS s "
    return sql + f"GROUP BY GROUPING SETS ({sets})", params


def _with_keywords(scored_sql: str, counts: str, values_sql: str, *, columns: str, size: int, pk_type: str) -> str:
    """The facet counts over the keyword matches and, in the same statement, the best of those matches among
    the shop rows read (those passing the filters), ranked as bm25.TOP_TAIL ranks them. Part 1 of the union is
    the facet rows, part 2 the matches; the NULLs take the other part's column types."""
    facet_rows = counts.replace("<source>", "r AS v")
    return (
        f"WITH scored AS MATERIALIZED ({scored_sql}), "
        "matched AS MATERIALIZED (SELECT object_id AS oid FROM scored), "
        f"r AS MATERIALIZED (SELECT * FROM ({values_sql}) AS v(k, {columns})) "
        f"SELECT 1, *, NULL::bigint, NULL::text, NULL::float8 FROM ({facet_rows}) AS f UNION ALL "
        f"(SELECT 2, {', '.join('NULL' for _ in range(size))}, NULL::int, NULL::bigint, "
        "sc.document_id, sc.object_id, sc.score "
        f"FROM scored sc JOIN r ON r.k = CAST(sc.object_id AS {pk_type}) "
        "ORDER BY round(sc.score * 1e9) DESC, sc.document_id LIMIT %(keywords_limit)s)"
    )


def _read(result: list[tuple], size: int, *, with_keywords: bool) -> tuple[list[list[tuple[Any, int]]], list[bm25.Hit]]:
    """Rows (value or bucket, count) per facet of a group of ``size``, and the keyword matches if any."""
    rows: list[list[tuple[Any, int]]] = [[] for _ in range(size)]
    hits: list[bm25.Hit] = []
    for row in result:
        if with_keywords:
            part, *row = row
            if part == 2:
                doc_id, oid, score = row[-3:]
                hits.append(bm25.Hit(doc_id, oid, float(score)))
                continue
            row = row[:-3]
        *keys_row, grouping, n = row
        # GROUPING(...) has a 1 bit for every column not grouped in this row; exactly one is grouped.
        i = next(i for i in range(size) if not grouping & (1 << (size - 1 - i)))
        if keys_row[i] is not None:
            rows[i].append((keys_row[i], n))
    hits.sort(key=lambda h: (-round(h.score, 9), h.document_id))
    return rows, hits


Counted = list[tuple[Facet, list[tuple[Any, int]]]]


def counted_with_keywords(index: SearchIndex) -> bool:
    """Whether ``keyword_matches_and_counts`` counts ``index``'s facets along with its keyword matches (it
    has facets, and the first group is single-valued)."""
    groups = _facet_groups(index)
    return bool(groups) and not _multivalued_group(index, groups[0])


def keyword_matches_and_counts(
    index: SearchIndex,
    filters: list[Filter],
    match: bm25.Match,
    *,
    restriction: Restriction | None,
    limit: int,
) -> tuple[list[bm25.Hit], Counted] | None:
    """The ``limit`` best BM25 matches (``match``) passing ``filters`` (and ``restriction``, of the
    postings), and the single-valued facet counts of ``index`` over
    every such match, in one statement. ``candidate_counts`` completes the counts once the vector
    candidates are known (so this statement can run while the vector search does). None when the
    index has no facet a shared scan can count (then ``bm25.search`` alone is cheaper)."""
    if not match.terms or not counted_with_keywords(index):
        return None
    groups = _facet_groups(index)
    sql, params = bm25.scored_sql(match, restriction)
    rows, hits = _count_group(
        index, filters, groups[0], matched_sql=None, matched_params={}, keywords=_Keywords(sql, params, limit)
    )
    return hits, list(zip(groups[0], rows, strict=True))


def candidate_counts(
    index: SearchIndex,
    filters: list[Filter],
    match: bm25.Match,
    *,
    restriction: Restriction | None,
    candidates: list[tuple[int, str]],
) -> Counted:
    """What ``keyword_matches_and_counts`` left to count: the vector ``candidates`` (document id, object
    id) that are not keyword matches, added to its single-valued counts (the two sets are disjoint, so
    their counts add up), and the to-many facets over the whole matched set."""
    groups = _facet_groups(index)
    counted: Counted = []
    if candidates:
        documents = [d for d, _ in candidates]
        keyword_sql, keyword_params = bm25.matching_documents_sql(match, restriction, documents)
        others = f"SELECT unnest(%(pool)s::text[]) EXCEPT SELECT m.object_id FROM ({keyword_sql}) AS m"
        params = {**keyword_params, "pool": text_array(o for _, o in candidates)}
        rows, _ = _count_group(index, filters, groups[0], matched_sql=others, matched_params=params)
        counted.extend(zip(groups[0], rows, strict=True))
    if len(groups) > 1:  # to-many facets: their own statements over the whole matched set
        matched_sql, matched_params = _matched_clause(match, [o for _, o in candidates], restriction)
        for group in groups[1:]:
            group_rows, _ = _count_group(index, filters, group, matched_sql=matched_sql, matched_params=matched_params)
            counted.extend(zip(group, group_rows, strict=True))
    return counted


def _multivalued_group(index: SearchIndex, group: list[Facet]) -> bool:
    return any(_multivalued(index.model, f.name) for f in group)


def count(
    indexes: list[SearchIndex],
    index_filters: dict[str, list[Filter]],
    *,
    matches: dict[str, bm25.Match] | None,
    vector_ids: dict[str, list[str]],
    done: dict[str, Counted] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Facet counts; ``matches`` are the keyword matches per index label (None when BM25 is off), ``vector_ids`` the vector
    candidates' object ids per index label; ``done``: the counts of indexes already counted (by
    ``keyword_matches_and_counts``), per index label."""
    values: dict[str, Counter] = {}
    buckets: dict[str, tuple[list[float], Counter]] = {}
    order: list[str] = []
    for index in indexes:
        counted = (done or {}).get(index.label)
        if counted is None:
            matched_sql, matched_params = _matched_clause(
                (matches or {}).get(index.label), vector_ids.get(index.label, [])
            )
            counted = []
            for group in _facet_groups(index):
                group_rows, _ = _count_group(
                    index, index_filters[index.label], group, matched_sql=matched_sql, matched_params=matched_params
                )
                counted.extend(zip(group, group_rows, strict=True))
        for facet in index.facets:
            if facet.name not in order:
                order.append(facet.name)
        for facet, rows in counted:
            if isinstance(facet, RangeFacet):
                _bounds, counter = buckets.setdefault(facet.name, (list(facet.bounds), Counter()))
                counter.update({int(b): n for b, n in rows})
            else:
                values.setdefault(facet.name, Counter()).update({jsonable(v): n for v, n in rows})
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
