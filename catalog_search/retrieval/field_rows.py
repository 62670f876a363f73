"""The shop rows' fields of some candidates, in one statement compiled once per index and set of fields.

Re-ranking stages read a few fields of a few hundred candidates per search (the understood values' tiers,
business ranking); building and compiling that queryset each time cost several times what PostgreSQL
does with it (docs/benchmarks.md, *Query understanding cost at 100k*), so it is compiled once and later
calls bind new arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models.expressions import RawSQL

from catalog_search import databases
from catalog_search.registry import SearchIndex
from catalog_search.sql import text_array


class Statement:
    """One ORM statement compiled once per index and shape, later calls binding new arrays: building and
    compiling the queryset cost several times what PostgreSQL does with it (docs/benchmarks.md, *Query
    understanding cost at 100k*). Each array parameter is a marker in the compiled parameters."""

    def __init__(self, sql: str, params: list, markers: list[object]) -> None:
        self.sql, self.params, self.markers = sql, params, markers

    def rows(self, *arrays: str) -> list[tuple]:
        bound = dict(zip(map(id, self.markers), arrays, strict=True))
        with databases.connection().cursor() as cursor:
            cursor.execute(self.sql, [bound.get(id(p), p) for p in self.params])
            return cursor.fetchall()


compiled: dict[tuple, Statement] = {}


def array_marker(marker: object, db_type: str) -> RawSQL:
    """A marker for one array parameter of ``db_type``, as ``IN (SELECT unnest(...))``: one
    parameter whatever the number of elements (``IN (%s, %s, ...)`` for a few hundred ids cost more to
    build and send than the lookup itself, and kept the planner off a covering index)."""
    return RawSQL(f"SELECT unnest(%s::{db_type}[])", (marker,))  # noqa: S611 - bound parameter


def field_rows(index: SearchIndex, fields: Sequence[str], object_ids: Sequence[str]) -> list[tuple]:
    """(pk, *fields) of the objects of ``object_ids`` (relations followed: a row per related value)."""
    key = ("values", index.label, tuple(fields))
    if key not in compiled:
        marker, pk = object(), index.model._meta.pk
        rows = index.model._base_manager.filter(pk__in=array_marker(marker, pk.rel_db_type(databases.connection())))
        compiled[key] = Statement(*rows.order_by().values_list("pk", *fields).query.sql_with_params(), [marker])
    return compiled[key].rows(text_array(object_ids))
