"""List parameters as PostgreSQL array literals, formatted in one pass.

Django's psycopg backend binds parameters on the client: a Python list becomes an array literal built by
psycopg one element at a time (a dumper call and a quoting check per element, ~0.6 us each). A search
sends lists of a few hundred ids to several statements (the filter's ids, the candidates, the walk's rows
to check). The same value as one string in array syntax, cast in the SQL (``%s::text[]``), costs one
quoting pass, and PostgreSQL sees the same constant, so plans do not change. With the page resolved k
objects first (engine._resolve), searches at 100k products were 1.05-1.08x faster side by side
(docs/benchmarks.md, search latency).
"""

from __future__ import annotations

from collections.abc import Iterable


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_array(values: Iterable[str]) -> str:
    """``values`` as a PostgreSQL array literal; cast it in the SQL (``%s::text[]``, or ``::uuid[]``,
    ``::integer[]``: any element type reads its values from the quoted text)."""
    return "{" + ",".join(map(_quoted, values)) + "}"


def int_array(values: Iterable[int]) -> str:
    """Integers as a PostgreSQL array literal; cast it in the SQL (``%s::bigint[]``)."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"
