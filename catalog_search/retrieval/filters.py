"""Compile validated filters into SQL over the shop's own table, through the Django ORM.

Filters run on the model's table (always current, related fields work, the queryset hook applies),
and enter the index queries (``member``) so they act inside BM25 scoring and inside the ANN scan, not
after it. A filter that keeps few objects enters them as the list of its ids (``ids_filter``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from catalog_search.registry import SearchIndex
from catalog_search.retrieval.query import Filter
from catalog_search.sql import text_array


def filtered_queryset(index: SearchIndex, filters: list[Filter]) -> models.QuerySet:
    queryset = index.get_queryset()
    for clause in filters:
        if clause.lookup == "exact":
            queryset = queryset.filter(**{f"{clause.field}__in": clause.values})
        else:
            queryset = queryset.filter(**{f"{clause.field}__{clause.lookup}": clause.values[0]})
    return queryset


def needs_filter(index: SearchIndex, filters: list[Filter]) -> bool:
    """True when the index must be restricted: filters, or a custom ``get_queryset`` (published only...)."""
    return bool(filters) or type(index).get_queryset is not SearchIndex.get_queryset


def object_ids_sql(index: SearchIndex, filters: list[Filter]) -> tuple[str, list] | None:
    """``SELECT pk::text FROM <model table> WHERE ...`` with params, or None when unrestricted."""
    if not needs_filter(index, filters):
        return None
    queryset = filtered_queryset(index, filters).order_by().values_list(Cast("pk", output_field=models.TextField()))
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # e.g. rating__gte beyond the integer column's range: nothing can match
        return "SELECT NULL::text WHERE false", []
    return sql, list(params)


IDS_SQL = "SELECT unnest(%s::text[])"
_IDS_NAMED = re.compile(r"SELECT unnest\((%\(\w+\)s)::text\[\]\)")


def ids_filter(object_ids: Iterable[str]) -> tuple[str, list]:
    """A filter selecting exactly ``object_ids`` (valid wherever a filter's SQL is; ``member`` tests it
    as an array)."""
    return IDS_SQL, [text_array(object_ids)]


def is_ids(named_sql: str) -> re.Match | None:
    """Whether a filter's SQL (with named parameters) is an ``ids_filter``'s."""
    return _IDS_NAMED.fullmatch(named_sql.strip())


def member(column: str, named_sql: str) -> str:
    """SQL: ``column`` is an object id passing the filter whose SQL (with named parameters) is
    ``named_sql``. An ``ids_filter`` becomes ``column = ANY(<the ids>)``: a condition on each row, which
    PostgreSQL hashes, where ``IN (<ids>)`` is a join that the planner may run as a nested loop reading
    every posting of the query's terms once per id: seen with statistics that say no page is all-visible
    (after a bulk load, a restore or ``VACUUM FULL``, until the next ``VACUUM``), 20 ms -> over 100 s at
    100k products. Another filter becomes ``column = ANY(ARRAY(<SQL>))``, for an index on ``column`` to
    look up (BM25 joins a large filter instead: bm25._sql)."""
    ids = is_ids(named_sql)
    return f"{column} = ANY({ids[1]}::text[])" if ids else f"{column} = ANY(ARRAY({named_sql}))"


def passing_check(index: SearchIndex, filters: list[Filter]) -> Callable[[list[str]], set[str]]:
    """``object_ids -> those passing the filters``: a primary-key lookup on the shop's table, so checking a
    few hundred candidates costs the same whatever share of the catalog the filter keeps. The ORM compiles
    the statement on the first call; later calls (a search checks its vector walk and its keyword
    candidates) only bind new ids (compiling cost ~2 ms a call at 100k products, the lookup itself ~1.7 ms)."""
    pk = index.model._meta.pk
    marker = object()  # stands for the ids in the compiled parameters
    compiled: list[tuple[str, list]] = []

    def passing(object_ids: list[str]) -> set[str]:
        keys = []
        for oid in object_ids:
            try:
                keys.append(pk.to_python(oid))
            except Exception:  # noqa: BLE001 - an id the model cannot hold cannot pass
                continue
        if not compiled:
            # One array parameter, not one per id: with 400-1000 ids, building and sending `IN (%s, %s, ...)`
            # cost more than the lookup itself.
            array = RawSQL(f"SELECT unnest(%s::{pk.rel_db_type(connection)}[])", (marker,))  # noqa: S611
            queryset = filtered_queryset(index, filters).filter(pk__in=array).order_by().values_list("pk")
            try:
                compiled.append(queryset.query.sql_with_params())
            except EmptyResultSet:  # a filter nothing can match
                compiled.append(("", []))
        sql, params = compiled[0]
        if not sql or not keys:
            return set()
        with connection.cursor() as cursor:
            ids = text_array(map(str, keys))
            cursor.execute(sql, [ids if p is marker else p for p in params])
            return {str(row[0]) for row in cursor.fetchall()}

    return passing


def passing_ids(index: SearchIndex, filters: list[Filter], object_ids: list[str]) -> set[str]:
    """Those of ``object_ids`` that pass the filters (``passing_check`` for a single call)."""
    return passing_check(index, filters)(object_ids)
