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

from django.core.exceptions import EmptyResultSet
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, Func, OuterRef, Q

from catalog_search import databases
from catalog_search.registry import FacetField, RangeFacet, SearchIndex, jsonable, multivalued
from catalog_search.retrieval import bm25
from catalog_search.retrieval.filters import Restriction, clause_q, filtered_queryset
from catalog_search.retrieval.query import Filter
from catalog_search.sql import named, text_array

Facet = FacetField | RangeFacet
# CATALOG_SEARCH["FACETS_OVER"]: "matches" counts the matched set above; "results" only the fused candidates
# (every result the query can page through), a few hundred objects whatever the catalog size.
SCOPES = ("matches", "results")
# The matched set's size rides along with the facet counts as one more "facet" (the empty grouping set):
# the rows of each part of the matched set are counted where its facets are, and the parts add up alike.
TOTAL = FacetField("(total)")
# Disjunctive facets (DISJUNCTIVE_FACETS): per facet name, the request's own filter clauses on its field. A
# facet is counted with every other clause applied but not its own: OR within a field, AND across fields.
Own = dict[str, list[Filter]]
# Object id -> facet name -> the value of each single-valued FacetField of the shop rows a count statement
# read: the candidates' values the re-rank by understood values needs (boost.py), read with the counts
# instead of by a statement of their own (docs/benchmarks.md, *Query understanding cost at 100k*).
Listed = dict[str, dict[str, Any]]


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


_multivalued = multivalued  # one object can have several values at ``path``


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


def _condition(index: SearchIndex, clauses: list[Filter]) -> Any:
    """Whether a row passes ``clauses`` (one facet's own), as a column: a subquery for a to-many path, so a
    product with several values still gives one row."""
    if _multivalued(index.model, clauses[0].field):
        return Exists(filtered_queryset(index, clauses).filter(pk=OuterRef("pk")))
    condition = Q()
    for clause in clauses:
        condition &= clause_q(clause)
    return ExpressionWrapper(condition, output_field=BooleanField())


def _split(filters: list[Filter], own: Own) -> list[Filter]:
    """``filters`` without the own clauses of the selected facets (identity: an understood clause equal to
    the shopper's stays)."""
    dropped = [c for clauses in own.values() for c in clauses]
    return [c for c in filters if not any(c is d for d in dropped)]


def _source(values_sql: str, columns: list[str], flags: int) -> str:
    """The rows of ``values_sql`` as ``v``. With selected facets, the flags s0, s1, ... say which own filters
    a row passes, and only rows failing at most one are kept: a row failing two counts for no facet."""
    if not flags:
        return f"({values_sql}) AS v({', '.join(columns)})"
    names = [f"s{j}" for j in range(flags)]
    passed = ", ".join(f"COALESCE(v.{s}, false) AS {s}" for s in names)
    failing = " + ".join(f"(NOT COALESCE(v.{s}, false))::int" for s in names)
    kept = ", ".join(f"v.{c}" for c in columns)
    return f"(SELECT {kept}, {passed} FROM ({values_sql}) AS v({', '.join(columns + names)}) WHERE {failing} <= 1) AS v"


def _count_group(
    index: SearchIndex,
    filters: list[Filter],
    group: list[Facet],
    *,
    matched_sql: str | None,
    matched_params: dict,
    keywords: _Keywords | None = None,
    own: Own | None = None,
    listed: Listed | None = None,
    uncounted_sql: str | None = None,
) -> tuple[list[list[tuple[Any, int]]], list[bm25.Hit], int]:
    """Rows (value or bucket, count) per facet of ``group``, and the matched objects passing every filter: one
    scan of the filtered shop table joined with the matched set (computed once), grouped by every facet at
    once with GROUPING SETS. With ``keywords``, the matched set is their scored documents, and the best scored
    documents among the rows read are returned too. With ``own``, each facet is counted without its own
    clauses (the rows failing one are read too, flagged). With ``listed`` (a single-valued group), the
    FacetField values of the rows returned (the keyword hits, or without ``keywords`` every row read) go
    into it by object id; ``uncounted_sql`` (with ``listed``) selects the object ids of rows read and listed
    but not counted."""
    own = own or {}
    # The matched ids, in the primary key's own type, as one array: PostgreSQL fetches exactly those rows
    # through the primary key index in table order (a bitmap scan) instead of scanning every row a broad
    # filter keeps, or probing the index once per matched object (docs/benchmarks.md).
    pk_type = index.model._meta.pk.rel_db_type(databases.connection())
    # An id twice in the array still fetches its row once. Scored documents are distinct, so their ids are
    # not deduplicated first (a sort saved); the postings' ids (one per matching term) are.
    distinct = "" if keywords else "DISTINCT"
    queryset = filtered_queryset(index, _split(filters, own))
    queryset = queryset.filter(_InMatched(F("pk"), pk_type=pk_type, distinct=distinct)).order_by()
    flags = {f"catalog_search_s{j}": _condition(index, clauses) for j, clauses in enumerate(own.values())}
    keyed = keywords is not None or listed is not None
    values = queryset.annotate(**flags).values_list(*(["pk"] if keyed else []), *(f.name for f in group), *flags)
    try:
        values_sql, values_params = named(*values.query.sql_with_params(), prefix="v")
    except EmptyResultSet:  # a filter nothing can match
        return [[] for _ in group], [], 0
    counts, count_params = _grouping_sets(group, list(own))
    params = {**matched_params, **values_params, **count_params}
    columns = [f"c{i}" for i in range(len(group))]
    values_of = _listed_columns(group) if listed is not None else None
    matched = f"WITH matched AS MATERIALIZED (SELECT m.oid FROM ({matched_sql}) AS m(oid)) "
    if keywords is None and values_of is None:
        query = matched + counts.replace("<source>", _source(values_sql, columns, len(flags)))
    elif keywords is None:
        source = _source(values_sql, ["k", *columns], len(flags))
        query = matched + _with_rows(counts, source, size=len(group), values=values_of, uncounted_sql=uncounted_sql)
    else:
        source = _source(values_sql, ["k", *columns], len(flags))
        query = _with_keywords(
            keywords.sql, counts, source, size=len(group), pk_type=pk_type, flags=len(flags), values=values_of
        )
        params.update(keywords.params, keywords_limit=keywords.limit)
    with databases.connection().cursor() as cursor:
        cursor.execute(query, params)
        result = cursor.fetchall()
    if values_of is not None and listed is not None:
        result = _take_listed(result, group, values_of, listed, with_keywords=keywords is not None)
    return _read(result, len(group), with_keywords=keywords is not None)


def _passing(flags: list[str], skip: str | None = None) -> str:
    """SQL: the row passes the own filters of every selected facet but ``skip``."""
    return " AND ".join(f"s{j}" for j, name in enumerate(flags) if name != skip) or "true"


def _grouping_sets(group: list[Facet], selected: list[str]) -> tuple[str, dict]:
    """SQL counting each facet of ``group`` (a value per row, or a bucket for a RangeFacet) over the rows of
    ``<source>`` (columns c0, c1, ...; flags s0, s1, ... for the ``selected`` facets' own filters), all in one
    pass with GROUPING SETS, and the rows passing every filter (the empty set); with its params."""
    keys, params = [], {}
    for i, facet in enumerate(group):
        if isinstance(facet, RangeFacet):
            params[f"bounds{i}"] = [float(b) for b in facet.bounds]
            keys.append(f"width_bucket(v.c{i}::float8, %(bounds{i})s::float8[]) AS g{i}")
        else:
            keys.append(f"v.c{i} AS g{i}")
    keys += [f"v.s{j}" for j in range(len(selected))]
    size = len(group)
    names = ", ".join(f"g{i}" for i in range(size))
    sets = ", ".join(f"(g{i})" for i in range(size))
    counted = "count(*)"
    if selected:  # each grouping set counts the rows passing the other facets' own filters
        whens = " ".join(
            f"WHEN {(1 << size) - 1 - (1 << (size - 1 - i))} THEN count(*) FILTER (WHERE {_passing(selected, f.name)})"
            for i, f in enumerate(group)
        )
        counted = f"CASE GROUPING({names}) {whens} ELSE count(*) FILTER (WHERE {_passing(selected)}) END"
    sql = f"SELECT {names}, GROUPING({names}), {counted} FROM (SELECT {', '.join(keys)} FROM <source>) AS s "
    return sql + f"GROUP BY GROUPING SETS ({sets}, ())", params


def _listed_columns(group: list[Facet]) -> list[int]:
    """The positions in ``group`` of the facets whose values ``listed`` returns: FacetFields (a RangeFacet's
    column in the counts is its bucket, of another type)."""
    return [i for i, facet in enumerate(group) if not isinstance(facet, RangeFacet)]


def _value_columns(size: int, values: list[int] | None, table: str) -> str:
    """Part 2's first columns: ``table``'s values of the ``values`` facets, NULL for the others."""
    return ", ".join(f"{table}.c{i}" if values is not None and i in values else "NULL" for i in range(size))


def _with_rows(counts: str, source: str, *, size: int, values: list[int], uncounted_sql: str | None) -> str:
    """The facet counts over ``source`` (part 1; with ``uncounted_sql``, over its rows but those) and, in the
    same statement, every row read with its values (part 2, the object id last), for ``listed``."""
    counted = "r AS v"
    skip = ""
    if uncounted_sql is not None:
        skip = f", uncounted AS MATERIALIZED (SELECT u.oid FROM ({uncounted_sql}) AS u(oid))"
        counted = "(SELECT * FROM r WHERE r.k::text NOT IN (SELECT oid FROM uncounted)) AS v"
    facet_rows = counts.replace("<source>", counted)
    return (
        f"{skip}, r AS MATERIALIZED (SELECT * FROM {source}) "
        f"SELECT 1, *, NULL::text FROM ({facet_rows}) AS f UNION ALL "
        f"SELECT 2, {_value_columns(size, values, 'r')}, NULL::int, NULL::bigint, r.k::text FROM r"
    )


def _take_listed(
    result: list[tuple], group: list[Facet], values: list[int], listed: Listed, *, with_keywords: bool
) -> list[tuple]:
    """The part 2 rows' values put in ``listed``; returns ``result`` as ``_read`` reads it (without
    ``keywords``: the facet rows alone, without the part number and the object id)."""
    kept = []
    for row in result:
        if row[0] == 2:
            oid = row[-2] if with_keywords else row[-1]
            listed[str(oid)] = {group[i].name: row[1 + i] for i in values}
        if with_keywords:
            kept.append(row)
        elif row[0] == 1:
            kept.append(row[1:-1])
    return kept


def _with_keywords(
    scored_sql: str, counts: str, source: str, *, size: int, pk_type: str, flags: int, values: list[int] | None = None
) -> str:
    """The facet counts over the keyword matches and, in the same statement, the best of those matches among
    the shop rows read that pass every filter, ranked as bm25.TOP_TAIL ranks them. Part 1 of the union is
    the facet rows, part 2 the matches (with ``values``, their values of those facets); the NULLs take the
    other part's column types."""
    facet_rows = counts.replace("<source>", "r AS v")
    passing = " AND ".join(f"r.s{j}" for j in range(flags)) or "true"
    return (
        f"WITH scored AS MATERIALIZED ({scored_sql}), "
        "matched AS MATERIALIZED (SELECT object_id AS oid FROM scored), "
        f"r AS MATERIALIZED (SELECT * FROM {source}) "
        f"SELECT 1, *, NULL::bigint, NULL::text, NULL::float8 FROM ({facet_rows}) AS f UNION ALL "
        f"(SELECT 2, {_value_columns(size, values, 'r')}, NULL::int, NULL::bigint, "
        "sc.document_id, sc.object_id, sc.score "
        f"FROM scored sc JOIN r ON r.k = CAST(sc.object_id AS {pk_type}) WHERE {passing} "
        "ORDER BY round(sc.score * 1e9) DESC, sc.document_id LIMIT %(keywords_limit)s)"
    )


def _read(
    result: list[tuple], size: int, *, with_keywords: bool
) -> tuple[list[list[tuple[Any, int]]], list[bm25.Hit], int]:
    """Rows (value or bucket, count) per facet of a group of ``size``, the keyword matches if any, and the
    rows passing every filter (the empty grouping set)."""
    rows: list[list[tuple[Any, int]]] = [[] for _ in range(size)]
    hits: list[bm25.Hit] = []
    total = 0
    for row in result:
        if with_keywords:
            part, *row = row
            if part == 2:
                doc_id, oid, score = row[-3:]
                hits.append(bm25.Hit(doc_id, oid, float(score)))
                continue
            row = row[:-3]
        *keys_row, grouping, n = row
        if grouping == (1 << size) - 1:  # the empty grouping set: every column grouped out
            total = n
            continue
        # GROUPING(...) has a 1 bit for every column not grouped in this row; exactly one is grouped.
        i = next(i for i in range(size) if not grouping & (1 << (size - 1 - i)))
        if keys_row[i] is not None and n:  # a value only rows failing other facets' filters have: no count
            rows[i].append((keys_row[i], n))
    hits.sort(key=lambda h: (-round(h.score, 9), h.document_id))
    return rows, hits, total


Counted = list[tuple[Facet, list[tuple[Any, int]]]]


def counted_with_keywords(index: SearchIndex) -> bool:
    """Whether ``keyword_matches_and_counts`` counts ``index``'s facets along with its keyword matches (it
    has facets, and the first group is single-valued)."""
    groups = _facet_groups(index)
    return bool(groups) and not _multivalued_group(index, groups[0])


def _with_total(group: list[Facet], rows: list[list[tuple[Any, int]]], total: int) -> Counted:
    return [*zip(group, rows, strict=True), (TOTAL, [(None, total)])]


def keyword_matches_and_counts(
    index: SearchIndex,
    filters: list[Filter],
    match: bm25.Match,
    *,
    restriction: Restriction | None,
    limit: int,
    own: Own | None = None,
    listed: Listed | None = None,
) -> tuple[list[bm25.Hit], Counted] | None:
    """The ``limit`` best BM25 matches (``match``) passing ``filters`` (and ``restriction``, of the
    postings), and the single-valued facet counts of ``index`` over every such match (with ``own``, each
    facet's over the matches passing the other facets' own filters), in one statement; TOTAL: the matches
    passing every filter. ``candidate_counts`` completes the counts once the vector candidates are known (so
    this statement can run while the vector search does). None when the index has no facet a shared scan
    can count (then ``bm25.search`` alone is cheaper). ``listed``: the hits' values (``_count_group``)."""
    if not match.terms or not counted_with_keywords(index):
        return None
    groups = _facet_groups(index)
    sql, params = bm25.scored_sql(match, restriction)
    rows, hits, total = _count_group(
        index,
        filters,
        groups[0],
        matched_sql=None,
        matched_params={},
        keywords=_Keywords(sql, params, limit),
        own=own,
        listed=listed,
    )
    return hits, _with_total(groups[0], rows, total)


def candidate_counts(
    index: SearchIndex,
    filters: list[Filter],
    match: bm25.Match,
    *,
    restriction: Restriction | None,
    candidates: list[tuple[int, str]],
    own: Own | None = None,
    more: bool = False,
    listed: Listed | None = None,
) -> Counted:
    """What ``keyword_matches_and_counts`` left to count: the vector ``candidates`` (document id, object
    id) that are not keyword matches, added to its single-valued counts (the two sets are disjoint, so
    their counts add up), and the to-many facets over the whole matched set. ``more``: candidates added to
    those counted already (disjunctive facets'), every facet counted over them alone. ``listed``: the values
    of the candidates counted here (``_count_group``), when the first group is single-valued."""
    groups = _facet_groups(index)
    counted: Counted = []
    if candidates:
        documents = [d for d, _ in candidates]
        keyword_sql, keyword_params = bm25.matching_documents_sql(match, restriction, documents)
        pool, matched = "SELECT unnest(%(pool)s::text[])", f"SELECT m.object_id FROM ({keyword_sql}) AS m"
        params = {**keyword_params, "pool": text_array(o for _, o in candidates)}
        single = counted_with_keywords(index)
        for n, group in enumerate(groups if more else groups[:1]):
            if listed is not None and n == 0 and single:
                # Every candidate's row is read and listed; the keyword matches among them are not counted.
                rows, _, total = _count_group(
                    index, filters, group, matched_sql=pool, matched_params=params, own=own, listed=listed,
                    uncounted_sql=matched,
                )  # fmt: skip
            else:
                rows, _, total = _count_group(
                    index, filters, group, matched_sql=f"{pool} EXCEPT {matched}", matched_params=params, own=own
                )
            counted.extend(_with_total(group, rows, total) if n == 0 else zip(group, rows, strict=True))
    if len(groups) > 1 and not more:  # to-many facets: their own statements over the whole matched set
        matched_sql, matched_params = _matched_clause(match, [o for _, o in candidates], restriction)
        for group in groups[1:]:
            group_rows, _, _ = _count_group(
                index, filters, group, matched_sql=matched_sql, matched_params=matched_params, own=own
            )
            counted.extend(zip(group, group_rows, strict=True))
    return counted


def _multivalued_group(index: SearchIndex, group: list[Facet]) -> bool:
    return any(_multivalued(index.model, f.name) for f in group)


@dataclass
class Tally:
    """Facet counts over every searched model, and the size of their matched set: of the models whose set
    was counted (``uncounted``: the labels of those without a single-valued facet)."""

    facets: dict[str, list[dict[str, Any]]]
    total: int
    uncounted: set[str]


def count(
    indexes: list[SearchIndex],
    index_filters: dict[str, list[Filter]],
    *,
    matches: dict[str, bm25.Match] | None,
    vector_ids: dict[str, list[str]],
    done: dict[str, Counted] | None = None,
    own: dict[str, Own] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Facet counts; see ``tally``."""
    return tally(indexes, index_filters, matches=matches, vector_ids=vector_ids, done=done, own=own).facets


def _counted(
    index: SearchIndex, filters: list[Filter], match: bm25.Match | None, ids: list[str], own: Own | None
) -> Counted:
    """Every facet of ``index`` over its matched set: ``match``'s keyword matches and ``ids``."""
    matched_sql, matched_params = _matched_clause(match, ids)
    counted: Counted = []
    for n, group in enumerate(_facet_groups(index)):
        rows, _, total = _count_group(
            index, filters, group, matched_sql=matched_sql, matched_params=matched_params, own=own
        )
        single = n == 0 and not _multivalued_group(index, group)
        counted.extend(_with_total(group, rows, total) if single else zip(group, rows, strict=True))
    return counted


def own_clauses(index: SearchIndex, requested: list[Filter]) -> Own:
    """Disjunctive facets: the request's own clauses on each of ``index``'s facets that it filters (what
    that facet's counts leave out)."""
    own = {f.name: [c for c in requested if c.field == f.name] for f in index.facets}
    return {name: clauses for name, clauses in own.items() if clauses}


def tally(
    indexes: list[SearchIndex],
    index_filters: dict[str, list[Filter]],
    *,
    matches: dict[str, bm25.Match] | None,
    vector_ids: dict[str, list[str]],
    done: dict[str, Counted] | None = None,
    own: dict[str, Own] | None = None,
) -> Tally:
    """Facet counts and the matched set's size; ``matches`` are the keyword matches per index label (None
    when BM25 is off), ``vector_ids`` the vector candidates' object ids per index label; ``done``: the counts
    of indexes already counted (by ``keyword_matches_and_counts``), per index label; ``own``: per index label,
    the selected facets' own filters (each facet counted without its own)."""
    values: dict[str, Counter] = {}
    buckets: dict[str, tuple[list[float], Counter]] = {}
    order: list[str] = []
    total, uncounted = 0, set()
    for index in indexes:
        counted = (done or {}).get(index.label)
        if counted is None:
            match = (matches or {}).get(index.label)
            ids = vector_ids.get(index.label, [])
            counted = _counted(index, index_filters[index.label], match, ids, (own or {}).get(index.label))
        for facet in index.facets:
            if facet.name not in order:
                order.append(facet.name)
        if not any(facet is TOTAL for facet, _ in counted):
            uncounted.add(index.label)
        for facet, rows in counted:
            if facet is TOTAL:
                total += rows[0][1]
            elif isinstance(facet, RangeFacet):
                _bounds, counter = buckets.setdefault(facet.name, (list(facet.bounds), Counter()))
                counter.update({int(b): n for b, n in rows})
            else:
                values.setdefault(facet.name, Counter()).update({jsonable(v): n for v, n in rows})
    return Tally(_shaped(indexes, order, values, buckets), total, uncounted)


def _shaped(
    indexes: list[SearchIndex],
    order: list[str],
    values: dict[str, Counter],
    buckets: dict[str, tuple[list[float], Counter]],
) -> dict[str, list[dict[str, Any]]]:
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
            ranked = sorted(values.get(name, Counter()).items(), key=lambda item: (-item[1], str(item[0])))
            out[name] = [{"value": v, "count": n} for v, n in ranked[: sizes.get(name, 20)]]
    return out


def sorted_matches(
    index: SearchIndex,
    filters: list[Filter],
    *,
    field: str,
    descending: bool,
    match: bm25.Match | None,
    ids: list[str],
    limit: int,
) -> list[tuple[int, str, Any]]:
    """The first ``limit`` objects of the matched set (``match``'s keyword matches and ``ids``) passing
    ``filters``, by ``field`` (NULLs last either way; a model without the field has only NULLs), then by
    primary key, so pages of one sort never repeat or skip an object: (document id, object id, value)."""
    matched_sql, matched_params = _matched_clause(match, ids)
    pk_type = index.model._meta.pk.rel_db_type(databases.connection())
    queryset = filtered_queryset(index, filters)
    queryset = queryset.filter(_InMatched(F("pk"), pk_type=pk_type, distinct="DISTINCT")).order_by()
    has = field in index.sort_fields
    try:
        values_sql, values_params = named(
            *queryset.values_list("pk", *([field] if has else [])).query.sql_with_params(), prefix="v"
        )
    except EmptyResultSet:
        return []
    columns = "k, value" if has else "k"
    order = f"v.value {'DESC' if descending else 'ASC'} NULLS LAST, v.k" if has else "v.k"
    value = "v.value" if has else "NULL"
    query = (
        f"WITH matched AS MATERIALIZED (SELECT m.oid FROM ({matched_sql}) AS m(oid)) "
        f"SELECT d.id, d.object_id, s.value, s.n FROM (SELECT v.k, {value} AS value, "
        f"row_number() OVER (ORDER BY {order}) AS n FROM ({values_sql}) AS v({columns}) "
        f"ORDER BY {order} LIMIT %(sort_limit)s) AS s "
        "JOIN catalog_search_document d ON d.content_type_id = %(sort_ct)s AND d.object_id = s.k::text ORDER BY s.n"
    )
    params = {**matched_params, **values_params, "sort_limit": limit, "sort_ct": index.content_type.pk}
    with databases.connection().cursor() as cursor:
        cursor.execute(query, params)
        return [(doc_id, oid, val) for doc_id, oid, val, _ in cursor.fetchall()]
