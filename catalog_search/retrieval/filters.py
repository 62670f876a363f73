"""Filters: compiled into SQL over the shop's own table through the Django ORM, and read once per search.

Filters run on the model's table (always current, related fields work, the queryset hook applies), and
enter the index statements as a restriction on object ids, so they act inside BM25 scoring and inside the
ANN scan, not after it. A restriction is one of two kinds:

- ``Subquery``: the filter's own SQL (``SELECT pk::text FROM <table> WHERE ...``), for a filter that keeps
  many objects;
- ``IdList``: exactly some object ids: a filter that keeps few, read once (``plan``), or the products
  nearest a photo.

``plan`` reads a filter once, bounded, and decides how the signals apply it (docs/architecture.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import models
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from catalog_search import databases
from catalog_search.registry import SearchIndex
from catalog_search.retrieval.query import Filter
from catalog_search.sql import named, text_array

Passing = Callable[[list[str]], set[str]]  # object ids -> those that pass the filters


@dataclass(frozen=True)
class Subquery:
    """The object ids (as text) a filter keeps, as SQL with positional parameters."""

    sql: str
    params: tuple[Any, ...]

    def select(self, prefix: str = "f") -> tuple[str, dict[str, Any]]:
        """SQL selecting the ids, with named parameters ``<prefix><i>``."""
        return named(self.sql, self.params, prefix)

    def member(self, column: str, prefix: str = "f") -> tuple[str, dict[str, Any]]:
        """SQL: ``column`` is one of the ids, as an array an index on ``column`` can look up (``IN
        (<subquery>)`` lets the planner hash-join a scan of the whole table instead)."""
        sql, params = self.select(prefix)
        return f"{column} = ANY(ARRAY({sql}))", params


@dataclass(frozen=True)
class IdList:
    """Exactly these object ids."""

    ids: tuple[str, ...]

    @classmethod
    def of(cls, object_ids: Iterable[str]) -> IdList:
        return cls(tuple(object_ids))

    def select(self, prefix: str = "f") -> tuple[str, dict[str, Any]]:
        return f"SELECT unnest(%({prefix}0)s::text[])", {f"{prefix}0": text_array(self.ids)}

    def member(self, column: str, prefix: str = "f") -> tuple[str, dict[str, Any]]:
        """SQL: ``column`` is one of the ids: a condition on each row, which PostgreSQL hashes. As ``IN
        (<ids>)`` it is a join the planner may run as a nested loop over every posting of the query's terms
        once per id, when the statistics say no page is all-visible (after a bulk load, a restore or
        ``VACUUM FULL``, until the next ``VACUUM``)."""
        return f"{column} = ANY(%({prefix}0)s::text[])", {f"{prefix}0": text_array(self.ids)}


Restriction = Subquery | IdList


def clause_q(clause: Filter) -> Q:
    """One filter clause as a ``Q``: exact values OR-ed (``__in``), or one range bound."""
    if clause.lookup == "exact":
        return Q(**{f"{clause.field}__in": clause.values})
    return Q(**{f"{clause.field}__{clause.lookup}": clause.values[0]})


def filtered_queryset(index: SearchIndex, filters: list[Filter]) -> models.QuerySet:
    queryset = index.get_queryset()
    for clause in filters:  # one filter() each: on a to-many path, each clause may match another related row
        queryset = queryset.filter(clause_q(clause))
    return queryset


def needs_filter(index: SearchIndex, filters: list[Filter]) -> bool:
    """True when the index must be restricted: filters, or a custom ``get_queryset`` (published only...)."""
    return bool(filters) or type(index).get_queryset is not SearchIndex.get_queryset


def object_ids_sql(index: SearchIndex, filters: list[Filter]) -> Subquery | None:
    """The ``Subquery`` of the objects passing ``filters``, or None when unrestricted."""
    if not needs_filter(index, filters):
        return None
    queryset = filtered_queryset(index, filters).order_by().values_list(Cast("pk", output_field=models.TextField()))
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # e.g. rating__gte beyond the integer column's range: nothing can match
        return Subquery("SELECT NULL::text WHERE false", ())
    return Subquery(sql, tuple(params))


def _estimated_above(cursor, subquery: Subquery, cap: int) -> bool:
    """PostgreSQL's own row estimate for the filter (its plan) is above ``cap``."""
    cursor.execute(f"EXPLAIN (FORMAT JSON) {subquery.sql}", subquery.params)
    plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # a driver that does not decode json
        plan = json.loads(plan)
    return plan[0]["Plan"]["Plan Rows"] > cap


def small_ids(subquery: Subquery, cap: int) -> IdList | None:
    """The object ids passing the filter when there are at most ``cap`` of them, else None. Trusts the row
    estimate in one direction only, as ``count_filtered`` does."""
    with databases.connection().cursor() as cursor:
        if _estimated_above(cursor, subquery, cap):
            return None
        cursor.execute(f"{subquery.sql} LIMIT {int(cap) + 1}", subquery.params)
        found = [row[0] for row in cursor.fetchall()]
    return IdList.of(found) if len(found) <= cap else None


def count_filtered(restriction: Restriction | None, cap: int) -> int | None:
    """How many objects pass the filter, counting at most ``cap + 1`` (None when unfiltered).

    When PostgreSQL's own row estimate for the filter is above ``cap``, the answer is ``cap + 1`` without
    counting. Only the large-filter path can be chosen on an estimate: if it was too high, the over-fetch
    still answers exactly (its filter check, or its fallback to the exact search when too few of the walked
    rows pass); an estimate at or below ``cap`` is always checked by counting, since the exact path over a
    filter that is really large would not be bounded."""
    if restriction is None:
        return None
    if isinstance(restriction, IdList):
        return len(restriction.ids)
    with databases.connection().cursor() as cursor:
        if _estimated_above(cursor, restriction, cap):
            return int(cap) + 1
        cursor.execute(f"SELECT count(*) FROM ({restriction.sql} LIMIT {int(cap) + 1}) f", restriction.params)
        return int(cursor.fetchone()[0])


def passing_check(index: SearchIndex, filters: list[Filter]) -> Passing:
    """``object_ids -> those passing the filters``: a primary-key lookup on the shop's table, so checking a
    few hundred candidates costs the same whatever share of the catalog the filter keeps. The ORM compiles
    the statement on the first call; later calls (a search checks its vector walk and its keyword
    candidates) only bind new ids."""
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
            # One array parameter, not one per id: building and sending `IN (%s, %s, ...)` for hundreds of
            # ids cost more than the lookup itself.
            array = RawSQL(f"SELECT unnest(%s::{pk.rel_db_type(databases.connection())}[])", (marker,))  # noqa: S611
            queryset = filtered_queryset(index, filters).filter(pk__in=array).order_by().values_list("pk")
            try:
                compiled.append(queryset.query.sql_with_params())
            except EmptyResultSet:  # a filter nothing can match
                compiled.append(("", []))
        sql, params = compiled[0]
        if not sql or not keys:
            return set()
        with databases.connection().cursor() as cursor:
            ids = text_array(map(str, keys))
            cursor.execute(sql, [ids if p is marker else p for p in params])
            return {str(row[0]) for row in cursor.fetchall()}

    return passing


def passing_ids(index: SearchIndex, filters: list[Filter], object_ids: list[str]) -> set[str]:
    """Those of ``object_ids`` that pass the filters (``passing_check`` for a single call)."""
    return passing_check(index, filters)(object_ids)


@dataclass(frozen=True)
class FilterPlan:
    """How the signals apply one index's filters, decided by one bounded read of them.

    A filter that keeps few objects (at most EXACT_SEARCH_MAX_ROWS) enters every statement as the list of
    their ids; one that keeps many is applied by checking only the signals' best unfiltered candidates
    (``passing``, a primary-key lookup), which does not grow with the catalog."""

    filters: list[Filter]
    restriction: Restriction | None  # None: the index is searched whole
    count: int | None  # objects passing, counted up to the cap + 1; None when unrestricted
    large: bool  # keeps more than the cap: the signals check their candidates with `passing`
    passing: Passing

    @property
    def small(self) -> Restriction | None:
        """The restriction when it keeps few objects, else None (a large one is checked on candidates)."""
        return None if self.large else self.restriction


def plan(index: SearchIndex, filters: list[Filter], cap: int) -> FilterPlan:
    """Read ``filters`` once: their ids when at most ``cap`` objects pass, else their SQL."""
    subquery = object_ids_sql(index, filters)
    restriction: Restriction | None = subquery
    count = None
    if subquery is not None:
        restriction = small_ids(subquery, cap) or subquery
        count = len(restriction.ids) if isinstance(restriction, IdList) else cap + 1
    large = count is not None and count > cap
    return FilterPlan(filters, restriction, count, large, passing_check(index, filters))
