"""Stage 4b: soft understood values re-rank the fused candidates: products that have them first.

A recognised value ("crimson tote": product type handbag, color red) is soft by default: it filters
nothing, it orders. Each candidate gets a tier, the sum of ``2 ** (n - 1 - priority)`` over the understood
fields whose value it has (n query fields, priority 0 the first declared), and the candidates are ordered
by tier, then by their fused score. So the field order is the priority: red handbags, then handbags of
another color, then red products of another type, then the rest, each group in the order fusion made
(the "filters" criterion of Algolia's tie-breaking ranking, with optional filters).

A photo refined by words ("this, but in blue") names its kind with the photo: the product type (the first
query field) most of the photo's ten nearest products have, when at least four of them do, is understood
as a soft value of source "photo" unless the words name one; and the photo's neighbours rank before other
candidates (the top tier), so the asked color reorders products of the photo's kind.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from catalog_search.registry import SearchIndex
from catalog_search.retrieval.context import Part, Search
from catalog_search.retrieval.fusion import Fused

PHOTO_VOTERS = 10  # the photo's nearest products that vote for its kind
PHOTO_QUORUM = 4  # votes the most common value needs


def _values(index: SearchIndex, object_ids: list[str], fields: list[str]) -> dict[str, dict[str, set[str]]]:
    """object id -> field -> its values (relations followed), one query."""
    pk = index.model._meta.pk
    out: dict[str, dict[str, set[str]]] = {}
    rows = index.model._base_manager.filter(pk__in=[pk.to_python(o) for o in object_ids]).values_list("pk", *fields)
    for row in rows:
        own = out.setdefault(str(row[0]), {})
        for name, value in zip(fields, row[1:], strict=True):
            if value is not None:
                own.setdefault(name, set()).add(str(value).strip())
    return out


def photo_kind(search: Search) -> None:
    """A composed query's photo kind (module docstring), added to ``search.understood``."""
    if not search.composed or not search.query.understand:
        return
    named = {part.field for part in search.understood}
    for index in search.query.indexes:
        fields = index.understood_fields
        near = search.found.neighbourhood.get(index.label, [])[:PHOTO_VOTERS]
        if not fields or not near or fields[0].name in named or fields[0].name in search.query.drop:
            continue
        votes = Counter(
            v for own in _values(index, near, [fields[0].name]).values() for v in own.get(fields[0].name, ())
        )
        if votes:
            value, count = votes.most_common(1)[0]
            if count >= PHOTO_QUORUM:  # a kind guessed from a photo is never a filter: the guess may be wrong
                search.understood.append(Part(fields[0].name, "exact", value, "(photo)", "photo", hard=False))
                named.add(fields[0].name)


def rerank(search: Search, ranked: list[Fused]) -> list[Fused]:
    """``ranked`` ordered by tier, then as fused (module docstring); each item's tier in ``item.tier``."""
    wanted = search.boosts()
    if not wanted and not search.composed:
        return ranked
    found = search.found
    by_index: dict[str, list[str]] = {}
    for item in ranked:
        index, oid = found.where[item.document_id]
        by_index.setdefault(index.label, []).append(oid)
    values: dict[tuple[str, str], dict[str, set[str]]] = {}
    for index in search.query.indexes:
        fields = [f.name for f in index.understood_fields if f.name in wanted]
        if fields and by_index.get(index.label):
            for oid, own in _values(index, by_index[index.label], fields).items():
                values[(index.label, oid)] = own
    neighbours = {label: set(ids) for label, ids in found.neighbourhood.items()}
    for item in ranked:
        index, oid = found.where[item.document_id]
        near = search.composed and oid in neighbours.get(index.label, ())
        item.tier, item.matched = _tier(index, values.get((index.label, oid), {}), wanted, photo_neighbour=near)
    return sorted(ranked, key=lambda item: -item.tier)  # stable: fused order within a tier


def _tier(
    index: SearchIndex, own: dict[str, set[str]], wanted: dict[str, set[str]], *, photo_neighbour: bool
) -> tuple[int, dict[str, Any]]:
    """The tier of an object with values ``own`` (module docstring), and which wanted values it has."""
    fields = [f.name for f in index.understood_fields]
    n = len(fields)
    tier, matched = 0, {}
    for priority, name in enumerate(fields):
        hit = own.get(name, set()) & wanted.get(name, set())
        if hit:
            tier += 2 ** (n - 1 - priority)
            matched[name] = sorted(hit)
    if photo_neighbour:
        tier += 2**n
        matched["photo_neighbour"] = True
    return tier, matched
