"""Stage 4c: the staff's query rules (catalog_search/rules.py) on the ranked candidates.

For a text query, every live rule it matches applies, oldest first:

- **boost / bury** (``boosted``, before the understood values' tiers): the fused score of each candidate
  matching the rule's filter is multiplied by its factor (1.5 boosts, 0.5 buries), and the candidates are
  ordered again; the tiers then order by understood values as before, so a boost moves products within
  their tier. (A photo refined by words orders a tier by the photo alone: a boost does not change that.)
- **hide** (``placed``): the products are removed from the results, whatever the order.
- **pin** (``placed``, after the tiers): each product is put at its position (1 is the first result) of the
  ranked list; a pinned product the signals did not retrieve is added, if it passes the request's filters
  (a shopper filtering on "in stock" never sees a pinned product out of stock). Two rules pinning one
  position: the older wins; a pinned product that no longer exists is skipped.
- **redirect**: the response's ``query.redirect`` says where to send the shopper (the first rule's); the
  results are still answered.

Sorted by a field, only hides apply (pins and boosts are about relevance). A rule whose filter no longer
fits the index (a field no longer declared) does nothing and is logged: a search never fails over a rule.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from catalog_search import databases
from catalog_search import rules as staff_rules
from catalog_search.exceptions import InvalidFilter
from catalog_search.models import Document
from catalog_search.registry import SearchIndex
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.filters import passing_ids
from catalog_search.retrieval.fusion import Fused
from catalog_search.retrieval.query import parse_filters
from catalog_search.retrieval.results import RETRIEVERS

logger = logging.getLogger(__name__)


def match(search: Search) -> None:
    """The live rules the query matches, in ``search.rules`` (the echo lists them), and the products they
    hide, in ``search.hidden``."""
    labels = [index.label for index in search.query.indexes]
    search.rules = staff_rules.matching(search.query.q, labels, timezone.now())
    search.hidden = {
        (label, oid) for rule in search.rules for oid in rule.hides for label in labels if rule.applies_to(label)
    }


def boosted(search: Search, ranked: list[Fused]) -> list[Fused]:
    """``ranked`` with the rules' boosts and buries applied to the fused scores, ordered again."""
    changed = False
    for rule in search.rules:
        if not rule.boost_filter or rule.boost_factor == 1.0:
            continue
        for index in search.query.indexes:
            if rule.applies_to(index.label):
                changed |= _boost(search, index, ranked, rule)
    return sorted(ranked, key=lambda item: (-item.score, item.document_id)) if changed else ranked


def _boost(search: Search, index: SearchIndex, ranked: list[Fused], rule: staff_rules.Rule) -> bool:
    try:
        _, per_index = parse_filters(rule.boost_filter, [index])
    except InvalidFilter as exc:
        logger.warning("catalog_search: query rule %s (%r) skipped on %s: %s", rule.id, rule.name, index.label, exc)
        return False
    own = {
        item.document_id: oid
        for item in ranked
        for found, oid in [search.found.where[item.document_id]]
        if found is index
    }
    passing = passing_ids(index, per_index[index.label], list(own.values())) if own else set()
    for item in ranked:
        if own.get(item.document_id) in passing:
            item.score *= rule.boost_factor
            item.rules.append({"rule": rule.id, "name": rule.name, "action": "boost", "factor": rule.boost_factor})
    return bool(passing)


def placed(search: Search, ranked: list[Fused]) -> list[Fused]:
    """``ranked`` without the hidden products and, unless sorted by a field, with the pinned ones in place."""
    if not search.rules:
        return ranked
    where = search.found.where
    kept = [item for item in ranked if _key(where[item.document_id]) not in search.hidden]
    return kept if search.query.sort else _pinned(search, kept, search.hidden)


def _key(found: tuple[SearchIndex, str]) -> tuple[str, str]:
    return found[0].label, found[1]


def _pinned(search: Search, ranked: list[Fused], hidden: set[tuple[str, str]]) -> list[Fused]:
    """``ranked`` with each rule's pins at their positions (module docstring)."""
    wanted: dict[int, tuple[staff_rules.Rule, tuple[str, str]]] = {}  # position -> the oldest rule's pin
    for rule in search.rules:
        for position, oid in rule.pins:
            for index in search.query.indexes:
                key = (index.label, oid)
                taken = {k for _, k in wanted.values()}
                if rule.applies_to(index.label) and position not in wanted and key not in taken | hidden:
                    wanted[position] = (rule, key)
    if not wanted:
        return ranked
    items = _pinned_items(search, ranked, {key for _, key in wanted.values()})
    moved = {item.document_id for item in items.values()}
    out = [item for item in ranked if item.document_id not in moved]
    for position in sorted(wanted):
        rule, key = wanted[position]
        if key in items:
            items[key].rules.append({"rule": rule.id, "name": rule.name, "action": "pin", "position": position})
            out.insert(min(position - 1, len(out)), items[key])
    return out


def _pinned_items(search: Search, ranked: list[Fused], keys: set[tuple[str, str]]) -> dict[tuple[str, str], Fused]:
    """(index label, object id) -> the pinned product's candidate: its own when ranked, else a new one when it
    is indexed and passes the request's filters (one look-up per searched index with such pins)."""
    found = search.found
    out = {key: item for item in ranked if (key := _key(found.where[item.document_id])) in keys}
    for index in search.query.indexes:
        missing = sorted(oid for label, oid in keys - out.keys() if label == index.label)
        if not missing:
            continue
        passing = passing_ids(index, search.query.index_filters[index.label], missing)
        rows = databases.using(Document.objects).filter(
            content_type_id=index.content_type.pk, object_id__in=sorted(passing)
        )
        for document_id, oid in rows.values_list("pk", "object_id"):
            found.where[document_id] = (index, oid)
            out[(index.label, oid)] = Fused(document_id, 0.0, dict.fromkeys(RETRIEVERS), dict.fromkeys(RETRIEVERS))
    return out
