"""The catalog's query-field values as one process holds them: what query understanding recognises.

The indexing pipeline keeps ``FieldValue`` current (indexing/values.py); a search reads an index's values
from this process's copy, loaded at most every ``VALUES_REFRESH_SECONDS`` (a few hundred rows, one
statement), so a value a worker has just recorded is recognised in every web process within that time.
Writers in this process forget the copy at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

from catalog_search import conf, databases
from catalog_search.models import FieldValue

_lock = threading.Lock()


@dataclass(frozen=True)
class CatalogValues:
    """field -> value -> how many indexed objects have it, for one content type; ``version`` changes only
    when the set of values does (what is built from them is rebuilt then, not when a count moves)."""

    loaded_at: float
    counts: dict[str, dict[str, int]]
    version: int


_loaded: dict[int, CatalogValues] = {}
_versions = itertools.count(1)


def catalog_values(content_type_id: int) -> dict[str, dict[str, int]]:
    """field -> value -> count of the indexed objects of ``content_type_id`` (refreshed as above)."""
    return loaded(content_type_id).counts


def loaded(content_type_id: int) -> CatalogValues:
    """This process's copy of the values of ``content_type_id``."""
    now = time.monotonic()
    cached = _loaded.get(content_type_id)
    if cached is not None and now - cached.loaded_at < conf.settings().VALUES_REFRESH_SECONDS:
        return cached
    counts: dict[str, dict[str, int]] = {}
    rows = databases.using(FieldValue.objects).filter(content_type_id=content_type_id, count__gt=0)
    for field, value, count in rows.values_list("field", "value", "count"):
        counts.setdefault(field, {})[value] = count
    if cached is not None and _names(cached.counts) == _names(counts):  # counts moved, the values did not
        fresh = CatalogValues(now, counts, cached.version)
    else:
        fresh = CatalogValues(now, counts, next(_versions))
    with _lock:
        _loaded[content_type_id] = fresh
    return fresh


def _names(counts: dict[str, dict[str, int]]) -> dict[str, set[str]]:
    return {field: set(values) for field, values in counts.items()}


def forget(content_type_id: int | None = None) -> None:
    """Drop this process's copy (of one content type, or all): the next search reads the table."""
    with _lock:
        if content_type_id is None:
            _loaded.clear()
        else:
            _loaded.pop(content_type_id, None)
