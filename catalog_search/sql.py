"""SQL helpers both sides share: parameters as PostgreSQL literals, and ORM SQL nested in named-parameter SQL.

Django's psycopg backend binds parameters on the client: a Python list becomes an array literal built by
psycopg one element at a time (a dumper call and a quoting check per element). A search sends lists of a
few hundred ids to several statements (the filter's ids, the candidates, the walk's rows to check). The
same value as one string in array syntax, cast in the SQL (``%s::text[]``), costs one quoting pass, and
PostgreSQL sees the same constant, so plans do not change (docs/benchmarks.md, search latency).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_array(values: Iterable[str]) -> str:
    """``values`` as a PostgreSQL array literal; cast it in the SQL (``%s::text[]``, or ``::uuid[]``,
    ``::integer[]``: any element type reads its values from the quoted text)."""
    return "{" + ",".join(map(_quoted, values)) + "}"


def int_array(values: Iterable[int]) -> str:
    """Integers as a PostgreSQL array literal; cast it in the SQL (``%s::bigint[]``)."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def vector_literal(vector: np.ndarray | None) -> str | None:
    """pgvector's text form; 9 significant digits round-trip a float32 exactly."""
    if vector is None:
        return None
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"


def named(sql: str, params: Sequence[Any], prefix: str) -> tuple[str, dict[str, Any]]:
    """The ORM's positional ``%s`` placeholders as named ``%(<prefix><i>)s`` ones, with their params, so its
    SQL nests in a named-parameter statement."""
    parts = sql.replace("%%", "\x00").split("%s")
    text = parts[0] + "".join(f"%({prefix}{i})s{part}" for i, part in enumerate(parts[1:]))
    return text.replace("\x00", "%%"), {f"{prefix}{i}": value for i, value in enumerate(params)}
