"""The candidates' values of an index's query fields, as the re-rank by understood values reads them.

Those the facet counts read with the candidates' shop rows come from there (``search.found.listed``: those
statements read the keyword hits' and the vector candidates' rows anyway); one query reads the others. They
are the shop rows' values when the search ran, either way: an edited product is tiered by its new values.
"""

from __future__ import annotations

from typing import Any

from catalog_search.registry import SearchIndex
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.field_rows import field_rows

Values = dict[str, dict[str, set[str]]]  # object id -> field -> its values


def read(index: SearchIndex, object_ids: list[str], fields: list[str]) -> Values:
    """object id -> field -> its values (relations followed), one query."""
    out: Values = {}
    for row in field_rows(index, fields, object_ids):
        own = out.setdefault(str(row[0]), {})
        for name, value in zip(fields, row[1:], strict=True):
            _add(own, name, value)
    return out


def _add(own: dict[str, set[str]], name: str, value: Any) -> None:
    text = "" if value is None else str(value).strip()
    if text:  # no value is no kind and no color
        own.setdefault(name, set()).add(text)


def listed(
    search: Search, index: SearchIndex, object_ids: list[str], fields: list[str] | tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Of ``object_ids``, those whose values of ``fields`` the facet counts read with the candidates'
    shop rows (object id -> field -> value), and the others (every one when a field is not a single-valued
    facet, or the counts did not run)."""
    rows = search.found.listed.get(index.label)
    # Every listed row has the same fields (the index's single-valued facets): one row says which.
    if not rows or not all(name in next(iter(rows.values())) for name in fields):
        return {}, list(object_ids)
    known, missing = {}, []
    for oid in object_ids:
        row = rows.get(oid)
        if row is None:
            missing.append(oid)
        else:
            known[oid] = row
    return known, missing


def of(search: Search, index: SearchIndex, object_ids: list[str], fields: list[str]) -> Values:
    """``read`` of ``object_ids``: those the facet counts read are known (``listed``), one query for the
    others."""
    known, missing = listed(search, index, object_ids, fields)
    out = read(index, missing, fields) if missing else {}
    for oid, row in known.items():
        own = out.setdefault(oid, {})
        for name in fields:
            _add(own, name, row[name])
    return out
