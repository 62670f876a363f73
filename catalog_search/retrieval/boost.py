"""Stage 4b: soft understood values re-rank the fused candidates: products that have them first.

A recognised value ("crimson tote": product type handbag, color red) is soft by default: it filters
nothing, it orders. Each candidate gets a tier, the sum of ``2 ** (n - priority)`` over the fields whose
named value it has (n query fields, priority 0 the first declared), and the candidates are ordered by tier,
then by their fused score. So the field order is the priority: red handbags, then handbags of another
color, then red products of another type, then the rest, each group in the order fusion made (the
"filters" criterion of Algolia's tie-breaking ranking, with optional filters).

The kind of product (the first query field's value) may be unnamed by the recognised words and still
clear, and it is then voted on by products (``KIND_VOTERS``, at least ``KIND_QUORUM`` agreeing):

- a query with words that name no value ("aqua joystick": the type is in "joystick", which no value or
  synonym knows): the kind of its ten best fused results, understood with source "results" at the field's
  own priority, so game controllers come before aqua products of any kind;
- a photo refined by words ("this, but in blue"): the kind of the photo's ten nearest products, source
  "photo". It is a guess the shopper did not say, so it ranks below every named value (weight 1): blue
  products of the photo's kind first, then other blue neighbours, then the photo's kind in other colors.

Within a tier a text query keeps the fused order. A photo refined by words orders each tier by the
candidates' similarity to the photo alone: the tier already holds what the words asked for ("blue"), so
what is left to rank is how much each looks like the photographed product. The fused score would count
the words a second time: the composed query vector is pulled toward the text (``COMPOSED_TEXT_WEIGHT``),
so among blue products it prefers the bluest of any kind to the photo's kind (docs/relevance.md). The
first tier's products nearest to the photo are candidates even when no signal retrieved them
(``keyword_signal._asked``).

The candidates' values come from the facet counts' statements where they can (``search.found.listed``:
those statements read the keyword hits' and the vector candidates' shop rows anyway, so a search with
understood values runs no statement of its own for them); ``_matching`` tests the others in the database.
They are the shop rows' values when the search ran, either way: an edited product is tiered by its new
values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q

from catalog_search import databases
from catalog_search.registry import SearchIndex, resolve_field
from catalog_search.retrieval import candidate_values, photo_order
from catalog_search.retrieval.context import Part, Search
from catalog_search.retrieval.field_rows import Statement, array_marker, compiled
from catalog_search.retrieval.fusion import Fused
from catalog_search.sql import text_array

KIND_VOTERS = 10  # the products that vote for a query's kind
KIND_QUORUM = 4  # votes the most common kind needs


def _vote(search: Search, index: SearchIndex, voters: list[str], source: str) -> None:
    """Understand the kind most of ``voters`` (object ids, best first) share, if enough of them do."""
    kind = index.understood_fields[0].name
    own = candidate_values.of(search, index, voters[:KIND_VOTERS], [kind])
    votes = Counter(v for values in own.values() for v in values.get(kind, ()))
    if votes:
        value, count = votes.most_common(1)[0]
        if count >= KIND_QUORUM:  # a voted kind is never a filter: the vote may be wrong
            search.understood.append(Part(kind, "exact", value, f"({source})", source, hard=False))


def _kind_unnamed(search: Search, index: SearchIndex) -> bool:
    fields = index.understood_fields
    if not fields or fields[0].name in search.query.drop:
        return False
    return all(part.field != fields[0].name for part in search.understood)


def photo_kind(search: Search) -> None:
    """A composed query's kind from the photo's nearest products (module docstring)."""
    if not search.composed or not search.query.understand:
        return
    for index in search.query.indexes:
        near = search.found.neighbourhood.get(index.label, [])
        if near and _kind_unnamed(search, index):
            _vote(search, index, list(near), "photo")


def results_kind(search: Search, ranked: list[Fused]) -> None:
    """A text query's kind from its best fused results, when some of its words name no value."""
    if search.composed or not search.unexplained or not search.query.understand:
        return
    for index in search.query.indexes:
        top = [oid for item in ranked for found, oid in [search.found.where[item.document_id]] if found is index]
        if top and _kind_unnamed(search, index):
            _vote(search, index, top, "results")


def _matching_statement(index: SearchIndex, names: tuple[str, ...]) -> Statement:
    """A flag per field of ``names``: whether the object has one of the values bound for it. A path through
    relations is a subquery, so a to-many relation does not repeat a row."""
    key = ("matching", index.label, names)
    if key not in compiled:
        manager, pk = index.model._base_manager, index.model._meta.pk
        markers = [object() for _ in range(len(names) + 1)]
        tests: dict[str, Any] = {}
        for n, name in enumerate(names):
            values = array_marker(markers[n + 1], resolve_field(index.model, name).db_type(databases.connection()))
            if "__" in name:
                tests[f"m{n}"] = Exists(manager.filter(pk=OuterRef("pk"), **{f"{name}__in": values}))
            else:
                tests[f"m{n}"] = ExpressionWrapper(Q(**{f"{name}__in": values}), output_field=BooleanField())
        rows = manager.filter(pk__in=array_marker(markers[0], pk.rel_db_type(databases.connection())))
        sql, params = rows.annotate(**tests).order_by().values_list("pk", *tests).query.sql_with_params()
        # Only the candidates with a value come back (most have none), tested outside a fence (OFFSET 0): in
        # the same WHERE, the planner could start from a value's index (every red product) instead of the
        # candidates' keys (measured: up to 300 ms at 100k).
        having = " OR ".join(f'c."{name}"' for name in tests)
        compiled[key] = Statement(f"SELECT * FROM ({sql} OFFSET 0) AS c WHERE {having}", params, markers)
    return compiled[key]


def _typed(field: models.Field, values: set[str]) -> str:
    """``values`` as an array literal of ``field``'s type, leaving out what the field cannot hold (a synonym
    naming a value of another type)."""
    kept = []
    for value in sorted(values):
        try:
            field.to_python(value)
        except ValidationError:
            continue
        kept.append(value)
    return text_array(kept)


def _python(field: models.Field, values: set[str]) -> set[Any]:
    """``values`` as ``field`` reads them from the database, leaving out what it cannot hold."""
    out = set()
    for value in values:
        try:
            out.add(field.to_python(value))
        except ValidationError:
            continue
    return out


def _matching(index: SearchIndex, object_ids: list[str], wanted: dict[str, set[str]]) -> dict[str, set[str]]:
    """object id -> the ``wanted`` fields whose understood value it has, for the candidates that have one:
    one statement that tests the values in the database (a flag per field, not the values: less to send
    and convert)."""
    names = tuple(sorted(wanted))
    arrays = [_typed(resolve_field(index.model, name), wanted[name]) for name in names]
    rows = _matching_statement(index, names).rows(text_array(object_ids), *arrays)
    return {str(row[0]): {name for name, has in zip(names, row[1:], strict=True) if has} for row in rows}


def _having(
    search: Search, index: SearchIndex, object_ids: list[str], wanted: dict[str, set[str]]
) -> dict[str, set[str]]:
    """``_matching`` of the candidates: those whose shop rows the facet counts read are tested on the
    values read (``search.found.listed``), the others by its statement (none, mostly: docs/benchmarks.md,
    *Query understanding cost at 100k*)."""
    names = tuple(sorted(wanted))
    known, missing = candidate_values.listed(search, index, object_ids, names)
    asked = [(name, _python(resolve_field(index.model, name), wanted[name])) for name in names]
    out: dict[str, set[str]] = {}
    for oid, row in known.items():
        fields = {name for name, values in asked if row[name] in values}
        if fields:
            out[oid] = fields
    if missing:
        out.update(_matching(index, missing, wanted))
    return out


def rerank(search: Search, ranked: list[Fused]) -> list[Fused]:
    """``ranked`` ordered by tier, then as fused (module docstring); each item's tier in ``item.tier``."""
    results_kind(search, ranked)
    wanted = search.boosts()
    if not wanted:
        return ranked
    found = search.found
    guessed = {part.field for part in search.understood if part.source in photo_order.GUESSED}
    by_index: dict[int, list[str]] = {}
    for item in ranked:
        index, oid = found.where[item.document_id]
        by_index.setdefault(id(index), []).append(oid)
    weights: dict[int, dict[str, int]] = {}
    have: dict[tuple[int, str], set[str]] = {}
    for index in search.query.indexes:
        weights[id(index)] = _weights([f.name for f in index.understood_fields], wanted, guessed)
        own = {name: wanted[name] for name in weights[id(index)]}
        if own and by_index.get(id(index)):
            for oid, fields in _having(search, index, by_index[id(index)], own).items():
                have[(id(index), oid)] = fields
    for item in ranked:
        index, oid = found.where[item.document_id]
        fields = have.get((id(index), oid))
        if fields:  # most candidates have none: tier 0, nothing matched (the defaults)
            own = weights[id(index)]
            item.tier = sum(own[name] for name in fields)
            item.matched = {name: sorted(wanted[name]) for name in own if name in fields}
    return sorted(ranked, key=photo_order.key(search, ranked))


def _weights(fields: list[str], wanted: dict[str, set[str]], guessed: set[str]) -> dict[str, int]:
    """Tier weight of each wanted field among an index's query ``fields`` (in priority order): a named value
    ``2 ** (n - priority)``, a guessed one 1, below every named one."""
    return {
        name: 1 if name in guessed else 2 ** (len(fields) - priority)
        for priority, name in enumerate(fields)
        if name in wanted
    }
