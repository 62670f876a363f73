"""Compile validated filters into SQL over the shop's own table, through the Django ORM.

Filters run on the model's table (always current, related fields work, the queryset hook applies),
and enter the index queries as ``object_id IN (<this SQL>)`` so they act inside BM25 scoring and
inside the ANN scan, not after it.
"""

from __future__ import annotations

from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from catalog_search.registry import SearchIndex
from catalog_search.retrieval.query import Filter


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


def passing_ids(index: SearchIndex, filters: list[Filter], object_ids: list[str]) -> set[str]:
    """Those of ``object_ids`` that pass the filters: a primary-key lookup on the shop's table, so
    checking a few hundred candidates costs the same whatever share of the catalog the filter keeps."""
    pk = index.model._meta.pk
    keys = []
    for oid in object_ids:
        try:
            keys.append(pk.to_python(oid))
        except Exception:  # noqa: BLE001 - an id the model cannot hold cannot pass
            continue
    # One array parameter, not one per id: with 400-1000 ids, building and sending `IN (%s, %s, ...)`
    # cost more than the lookup itself.
    array = RawSQL(f"SELECT unnest(%s::{pk.rel_db_type(connection)}[])", (keys,))  # noqa: S611 - a bound list
    queryset = filtered_queryset(index, filters).filter(pk__in=array).order_by()
    return {str(key) for key in queryset.values_list("pk", flat=True)}
