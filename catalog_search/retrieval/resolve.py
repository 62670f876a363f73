"""Stage 6: the page's results as model instances, with their scores, ranks and (``explain``) why."""

from __future__ import annotations

from typing import Any

from django.db import models

from catalog_search import databases
from catalog_search.registry import SearchIndex
from catalog_search.retrieval import bm25, highlight
from catalog_search.retrieval.context import Candidates, Search
from catalog_search.retrieval.fusion import Fused
from catalog_search.retrieval.results import RETRIEVERS, SearchHit


def _fetch(
    items: list[Fused],
    found: Candidates,
    indexes: list[SearchIndex],
    into: dict[tuple[str, str], models.Model],
) -> None:
    """Load the objects of ``items`` that still exist into ``into`` ((index label, object id) -> object):
    one query per model."""
    by_index: dict[str, list[str]] = {}
    for item in items:
        index, oid = found.where[item.document_id]
        by_index.setdefault(index.label, []).append(oid)
    for index in indexes:
        oids = by_index.get(index.label)
        if oids:
            pk = index.model._meta.pk
            for obj in databases.using(index.get_queryset()).filter(pk__in=[pk.to_python(o) for o in oids]):
                into[(index.label, str(obj.pk))] = obj


def resolve(search: Search, ranked: list[Fused]) -> list[SearchHit]:
    """The page's first ``k`` results whose objects still exist (deleted or unpublished since indexing are
    dropped): one query per searched model, whatever k is."""
    query, found = search.query, search.found
    # A few extra stand in for objects deleted since indexing, so they do not shorten the page; they are
    # fetched only when some of the page's own k are missing (rare), so a search builds k instances, not 2k.
    page = ranked[query.offset : query.offset + 2 * query.k]
    instances: dict[tuple[str, str], models.Model] = {}
    shown = page[: query.k]
    _fetch(shown, found, query.indexes, instances)
    if any((found.where[i.document_id][0].label, found.where[i.document_id][1]) not in instances for i in shown):
        _fetch(page[query.k :], found, query.indexes, instances)
    explained: dict[int, dict[str, float]] = {}
    if query.explain and search.terms:
        for index in query.indexes:
            ids = [i.document_id for i in page if found.where[i.document_id][0] is index]
            explained.update(bm25.explain_terms(index.content_type.pk, search.terms, ids))
    terms = highlight.query_terms(search.text, search.terms, search.expanded) if query.highlight else None
    hits: list[SearchHit] = []
    for item in page:
        if len(hits) == query.k:  # the rest of the page was resolved only to stand in for deleted objects
            break
        index, oid = found.where[item.document_id]
        obj = instances.get((index.label, oid))
        if obj is None:  # deleted or left the queryset since it was indexed
            continue
        scores = {name: item.scores.get(name) for name in RETRIEVERS}
        if search.composed:  # the keyword signal was fused on photo similarity; its BM25 score is reported
            scores["bm25"] = found.bm25_scores.get(item.document_id)
        hits.append(
            SearchHit(
                object=obj,
                id=obj.pk,
                type=index.label,
                score=item.score,
                scores=scores,
                ranks={name: item.ranks.get(name) for name in RETRIEVERS},
                fields=index.display_values(obj),
                explain=_explain(search, item, explained) if query.explain else None,
                highlights=highlight.highlights(index, obj, terms) if terms is not None else None,
            )
        )
    return hits


def _explain(search: Search, item: Fused, explained: dict[int, dict[str, float]]) -> dict[str, Any]:
    return {
        "fusion": search.query.fusion,
        "contributions": item.contributions,
        "bm25_terms": explained.get(item.document_id, {}),
        "vector_similarities": search.found.similarities.get(item.document_id, {}),
        # Composed query: the keyword signal listed the photo's neighbours matching the words, nearest first.
        **({"bm25_scope": "photo_neighbours", "photo_similarity": item.scores.get("bm25")} if search.composed else {}),
        # Understood values re-rank by tier (boost.py): which of them the result has.
        **({"boost": {"tier": item.tier, "matched": item.matched}} if search.understood else {}),
        # A photo refined by words: what ordered it within its tier (photo_order.py).
        **({"within_tier": item.within} if item.within else {}),
        # The staff's query rules that moved it (retrieval/rules.py).
        **({"rules": item.rules} if item.rules else {}),
    }
