"""``search()``: query -> parse -> retrieve (BM25, vectors) -> fuse -> resolve -> facets -> results."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
from django.db import DatabaseError, models

from catalog_search import conf
from catalog_search.analysis import get_analyzer
from catalog_search.encoding.active import active_encoder
from catalog_search.encoding.encoders import Encoder, normalize
from catalog_search.exceptions import EncoderUnavailable, IndexUnavailable
from catalog_search.models import Encoder as EncoderRow
from catalog_search.registry import SearchIndex
from catalog_search.retrieval import bm25, facets, fusion, parallel, query_cache, vector
from catalog_search.retrieval.expansion import words as expansion
from catalog_search.retrieval.filters import ids_filter, object_ids_sql, passing_check
from catalog_search.retrieval.query import Filter, SearchQuery, build_query

logger = logging.getLogger(__name__)

SIGNALS = ("bm25", "vector")  # every result reports both; null where a signal did not retrieve it


@dataclass
class SearchHit:
    """One result: the model instance, its fused score and each signal's score and rank."""

    object: models.Model
    id: Any
    type: str
    score: float
    scores: dict[str, float | None]
    ranks: dict[str, int | None]
    fields: dict[str, Any]
    explain: dict[str, Any] | None = None


@dataclass
class SearchResults:
    query: dict[str, Any]
    results: list[SearchHit]
    facets: dict[str, list[dict[str, Any]]]
    took_ms: float
    warnings: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


@dataclass
class _Candidates:
    bm25: list[tuple[int, float]] = field(default_factory=list)
    vector: list[tuple[int, float]] = field(default_factory=list)
    where: dict[int, tuple[SearchIndex, str]] = field(default_factory=dict)  # doc id -> (index, object id)
    bm25_terms: dict[int, dict[str, float]] = field(default_factory=dict)
    similarities: dict[int, dict[str, float]] = field(default_factory=dict)
    pools: dict[str, list[str]] = field(default_factory=dict)  # vector candidates' object ids per index label
    pool_documents: dict[str, list[int]] = field(default_factory=dict)  # and their document ids
    neighbour_matches: dict[str, list[str]] = field(default_factory=dict)  # composed: BM25 hits' object ids
    bm25_scores: dict[int, float] = field(default_factory=dict)  # composed: the keyword matches' BM25 scores


def search(
    q: str | None = None,
    image: Any = None,
    filters: dict[str, Any] | None = None,
    k: int = 20,
    offset: int = 0,
    mode: str = "hybrid",
    fusion: str | None = None,
    alpha: float | None = None,
    explain: bool = False,
    models: list[str] | None = None,
    rrf_k: int | None = None,
) -> SearchResults:
    """Search the registered models.

    ``q`` is text, ``image`` a photo (bytes, file object or PIL image); both together make a composed
    query ("this, but in red"). ``filters`` use Django lookup style on declared filter fields
    (``{"category": ["bags", "shoes"], "price__lte": 50}``). ``models`` limits the search to some
    registered models ("shop.product"). ``fusion`` (default ``CATALOG_SEARCH['DEFAULT_FUSION']``) is "rrf" or
    "weighted" (``alpha``: the vector signal's weight, default ``DEFAULT_ALPHA``). ``rrf_k`` overrides
    ``CATALOG_SEARCH['RRF_K']`` (tuning). Raises InvalidQuery (and subclasses) for bad input and
    ServiceUnavailable when the index or the encoder cannot answer.
    """
    started = time.perf_counter()
    query = build_query(q, image, filters, k, offset, mode, fusion, alpha, explain, models)
    try:
        with parallel.search_running():
            return _run(query, started, rrf_k or int(conf.get("RRF_K")))
    except DatabaseError as exc:
        logger.exception("catalog_search: database error during search")
        raise IndexUnavailable(f"The search index is unavailable: {type(exc).__name__}") from exc


def _run(query: SearchQuery, started: float, rrf_k: int) -> SearchResults:
    warnings: list[str] = []
    use_bm25 = query.mode in ("hybrid", "bm25") and query.q is not None
    use_vector = query.mode in ("hybrid", "vector") or query.image is not None
    terms = get_analyzer().terms(query.q) if use_bm25 and query.q else []
    pool = max(int(conf.get("CANDIDATES")), query.offset + query.k)
    vector_query = query
    added: dict[str, list[str]] = {}  # query word -> catalog words expansion searched for it too
    groups: dict[str, int] | None = None  # term -> the query word it stands for (bm25.match)
    expansion_explained: dict[str, list[dict]] = {}  # with explain: why each word was added
    loaded: tuple[EncoderRow, Encoder] | None = None  # the active encoder, looked up once per search
    if query.q is not None and conf.get("QUERY_EXPANSION"):  # words no document contains: nearest catalog words
        with contextlib.suppress(EncoderUnavailable):
            loaded = active_encoder()
            expanded = expansion.expand(query.q, query.indexes, *loaded)
            if terms and expanded.groups:  # terms is empty in vector mode
                groups = expansion.term_groups(terms, expanded.groups)
                terms = terms + expanded.terms
            vector_query = replace(query, q=expanded.text or query.q)
            added = {word: [w for w, _ in found] for word, found in expanded.added.items()}
            expansion_explained = expanded.explained() if query.explain else {}

    qvec, photo_vec, encoder_row = None, None, None
    if use_vector:
        try:
            encoder_row, qvec, photo_vec = _query_vector(vector_query, loaded)
        except EncoderUnavailable as exc:
            if query.image is not None or query.mode == "vector" or not use_bm25:
                raise
            warnings.append(f"vector signal unavailable, keyword results only: {exc.message}")
            logger.warning("catalog_search: %s", exc.message)

    # Composed query ("this, but in crimson"): over the whole catalog the refinement's keywords retrieve
    # every crimson product of any kind, so the keyword signal is the photo's own neighbourhood (the
    # products nearest to the photo alone: the same kind of product, in any color) matching the words,
    # nearest first (the photo similarity is that signal's score in both fusions). docs/relevance.md
    # measures it against ranking them by BM25.
    composed = bool(terms) and photo_vec is not None
    found = _Candidates()
    counted: dict[str, facets.Counted] = {}  # facet counts made along with the keyword matches, per index
    facets_over_matches = conf.get("FACETS_OVER") != "results"
    matches: dict[str, bm25.Match] = {}  # per index: which documents the keyword signal matches
    for index in query.indexes:
        filter_sql = object_ids_sql(index, query.index_filters[index.label])
        # One bounded read of the filter decides how the signals apply it: inside their queries when it
        # keeps few objects (then as the list of their ids); when it keeps many, by checking only their
        # best unfiltered candidates (`passing`, a primary-key lookup), which does not grow with the
        # catalog (docs/architecture.md).
        cap = int(conf.get("EXACT_SEARCH_MAX_ROWS"))
        count = None
        if filter_sql is not None:
            ids = vector.filter_ids(filter_sql, cap)
            count = cap + 1 if ids is None else len(ids)
            filter_sql = filter_sql if ids is None else ids_filter(ids)
        filters = query.index_filters[index.label]
        passing = passing_check(index, filters)
        large = count is not None and count > cap
        ct = index.content_type.pk
        # The shop rows apply the filter; restricting the postings to it as well pays when it keeps few.
        restrict = None if large else filter_sql
        # With facets to count over every match, the keyword statement counts its matches and
        # candidate_counts the vector candidates no query term matched (facets.py).
        with_counts = facets_over_matches and facets.counted_with_keywords(index)
        keywords = None
        if terms:
            matches[index.label] = bm25.match(ct, terms, groups)
        if terms and not composed:
            job = partial(
                _keywords,
                index,
                filters,
                matches[index.label],
                filter_sql,
                restrict,
                pool,
                with_counts,
                passing if large else None,
            )
            # Independent of the vector search, so it runs on a second connection meanwhile.
            keywords = parallel.Deferred(job, allowed=qvec is not None)
        if qvec is not None and encoder_row is not None:
            weights = _column_weights(query, index)
            hits = vector.search(
                encoder_row.pk, encoder_row.dim, ct, qvec, weights, filter_sql, pool, passing, count, query.explain
            )
            found.pools[index.label] = [h.object_id for h in hits]
            found.pool_documents[index.label] = [h.document_id for h in hits]
            for vhit in hits:
                found.vector.append((vhit.document_id, vhit.score))
                found.where[vhit.document_id] = (index, vhit.object_id)
                found.similarities[vhit.document_id] = vhit.similarities
        if terms:
            nearness: dict[str, float] = {}
            labelled = (found.pool_documents.get(index.label, []), found.pools.get(index.label, []))
            candidates = list(zip(*labelled, strict=True))
            keyword_passing = passing if large else None
            if keywords is not None:
                # Counted here while the keyword statement may still be running on its own connection.
                # Which candidates are keyword matches does not depend on restricting the postings to the
                # filter: the counted rows pass it anyway.
                extra = (
                    facets.candidate_counts(index, filters, matches[index.label], None, candidates)
                    if with_counts
                    else []
                )
                keyword_hits, keyword_counts = keywords.result()
            else:  # composed: the keyword signal searches the photo's neighbourhood, known only now
                assert photo_vec is not None and encoder_row is not None
                weights = _column_weights(query, index)
                neighbours = vector.search(
                    encoder_row.pk, encoder_row.dim, ct, photo_vec, weights, filter_sql, pool, passing, count, False
                )
                nearness = {h.object_id: h.score for h in neighbours}
                # The neighbours passed the filter already, so restricting to them applies it too.
                restrict = ids_filter(nearness)
                keyword_hits, keyword_counts = _keywords(
                    index, filters, matches[index.label], filter_sql, restrict, pool, with_counts, None
                )
                # Here the keyword matches are those among the neighbours.
                extra = (
                    facets.candidate_counts(index, filters, matches[index.label], restrict, candidates)
                    if with_counts
                    else []
                )
                keyword_passing = None
            while matches[index.label].required > 1 and len(keyword_hits) < query.k:
                # Fewer documents have MINIMUM_SHOULD_MATCH of the terms than a page shows: one term fewer is
                # enough, down to any term (as Algolia drops query words while too few results remain). By
                # page size, not offset, so every page of a query is cut from the same ranking.
                looser = matches[index.label]
                matches[index.label] = replace(looser, required=looser.required - 1)
                keyword_hits, keyword_counts = _keywords(
                    index, filters, matches[index.label], filter_sql, restrict, pool, with_counts, keyword_passing
                )
                extra = (
                    facets.candidate_counts(
                        index, filters, matches[index.label], None if keywords is not None else restrict, candidates
                    )
                    if with_counts
                    else []
                )
            if keyword_counts is not None:
                counted[index.label] = keyword_counts + extra
            for hit in keyword_hits:
                found.where[hit.document_id] = (index, hit.object_id)
                if composed:
                    # Among products matching a refinement word, BM25 scores differ mostly by text length,
                    # which says nothing about which one the shopper photographed: closeness to it does.
                    found.bm25.append((hit.document_id, nearness[hit.object_id]))
                    found.bm25_scores[hit.document_id] = hit.score
                    # At most `pool` neighbours, so this lists every keyword match among them.
                    found.neighbour_matches.setdefault(index.label, []).append(hit.object_id)
                else:
                    found.bm25.append((hit.document_id, hit.score))
    # Several models: merge their lists by score (one ranked list per signal).
    # Rounded: a BM25 sum can differ in its last bit between query plans; equal scores rank by document id.
    found.bm25.sort(key=lambda h: (-round(h[1], 9), h[0]))
    found.vector.sort(key=lambda h: (-h[1], h[0]))

    signals = {}
    if terms or query.mode == "bm25":
        signals["bm25"] = found.bm25[:pool]
    if qvec is not None:
        signals["vector"] = found.vector[:pool]
    if query.fusion == "weighted":
        ranked = fusion.weighted(signals, {"vector": query.alpha, "bm25": 1.0 - query.alpha})
    else:
        ranked = fusion.rrf(signals, rrf_k)
    # Resolve a few extra so objects deleted since indexing (dropped on resolve) do not shorten the page.
    page = ranked[query.offset : query.offset + 2 * query.k]

    hits = _resolve(page, found, query, terms, composed)
    if facets_over_matches:
        facet_counts = facets.count(
            query.indexes,
            query.index_filters,
            matches if "bm25" in signals and not composed else None,
            _matched_ids(found, composed) if "vector" in signals else {},
            counted,
        )
    else:  # the fused candidates: every result the query can page through
        results: dict[str, list[str]] = {}
        for item in ranked:
            index, oid = found.where[item.key]
            results.setdefault(index.label, []).append(oid)
        facet_counts = facets.count(query.indexes, query.index_filters, None, results)
    return SearchResults(
        query={
            "q": query.q,
            "mode": query.mode,
            "fusion": query.fusion,
            "filters": query.filters_as_dict(),
            **({"alpha": query.alpha} if query.fusion == "weighted" else {}),
            # A page can say "pocketbook: also searched handbag".
            **({"expanded": added} if added else {}),
            **({"expansion": expansion_explained} if expansion_explained else {}),
        },
        results=hits,
        facets=facet_counts,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        warnings=warnings,
    )


def _keywords(
    index: SearchIndex,
    filters: list[Filter],
    match: bm25.Match,
    filter_sql: tuple[str, list] | None,
    restrict: tuple[str, list] | None,
    limit: int,
    with_counts: bool,
    passing: Callable[[list[str]], Collection[str]] | None,
) -> tuple[list[bm25.Hit], facets.Counted | None]:
    """The keyword signal's ``limit`` best matches (``match``) passing ``filters`` (``filter_sql``), the postings
    restricted to ``restrict`` (an ``object_id IN`` SQL) if given, and, ``with_counts`` for a model with
    facets, the facet counts over every match (one statement: facets.keyword_matches_and_counts). Else
    BM25 alone, which checks the filter on its best matches only when given ``passing`` (a large filter)."""
    if with_counts:
        both = facets.keyword_matches_and_counts(index, filters, match, restrict, limit)
        if both is not None:
            return both
    hits = bm25.search(
        index.content_type.pk, match, restrict or filter_sql, limit, passing if restrict is None else None
    )
    return hits, None


def _query_vector(
    query: SearchQuery, loaded: tuple[EncoderRow, Encoder] | None = None
) -> tuple[EncoderRow, np.ndarray, np.ndarray | None]:
    """The active encoder (``loaded`` if the caller has it), the query vector and, for a composed query,
    the photo's own vector."""
    row, encoder = loaded or active_encoder()
    if query.image is None:
        return row, query_cache.text_vector(encoder, query.q), None
    image_vector = encoder.encode_images([query.image])[0]
    if query.q is None:
        return row, image_vector, None
    # Composed query: move the photo's embedding toward the refinement text ("this, but in red").
    text_vector = query_cache.text_vector(encoder, query.q)
    composed = normalize(image_vector + float(conf.get("COMPOSED_TEXT_WEIGHT")) * text_vector)
    return row, composed, image_vector


def _matched_ids(found: _Candidates, composed: bool) -> dict[str, list[str]]:
    """Object ids in the facets' matched set besides BM25's matches: the vector candidates, and for a
    composed query the keyword matches among the photo's neighbours (its BM25 signal searched no others)."""
    if not composed:
        return found.pools
    labels = found.pools.keys() | found.neighbour_matches.keys()
    return {
        label: list(dict.fromkeys(found.pools.get(label, []) + found.neighbour_matches.get(label, [])))
        for label in labels
    }


def _column_weights(query: SearchQuery, index: SearchIndex) -> dict[str, float]:
    """Which stored vectors the query vector is compared with."""
    if not index.image_field:
        return {"text": 1.0}
    if query.image is not None:
        return {"image": 1.0}
    w = float(conf.get("TEXT_QUERY_IMAGE_WEIGHT"))
    return {"image": w, "text": 1.0 - w}


def _fetch(
    items: list[fusion.Fused],
    found: _Candidates,
    indexes: list[SearchIndex],
    into: dict[tuple[str, str], models.Model],
) -> None:
    """Load the objects of ``items`` that still exist into ``into`` ((index label, object id) -> object):
    one query per model."""
    by_index: dict[str, list[str]] = {}
    for item in items:
        index, oid = found.where[item.key]
        by_index.setdefault(index.label, []).append(oid)
    for index in indexes:
        oids = by_index.get(index.label)
        if oids:
            pk = index.model._meta.pk
            for obj in index.get_queryset().filter(pk__in=[pk.to_python(o) for o in oids]):
                into[(index.label, str(obj.pk))] = obj


def _resolve(
    page: list[fusion.Fused], found: _Candidates, query: SearchQuery, terms: list[str], composed: bool
) -> list[SearchHit]:
    """The first ``query.k`` results of ``page`` whose objects still exist: one query per searched model,
    whatever k is."""
    instances: dict[tuple[str, str], models.Model] = {}
    # The page's own k first; the rest of `page` only for as many as were deleted since indexing (rare), so
    # a search builds k model instances, not 2k.
    shown = page[: query.k]
    _fetch(shown, found, query.indexes, instances)
    if any((found.where[i.key][0].label, found.where[i.key][1]) not in instances for i in shown):
        _fetch(page[query.k :], found, query.indexes, instances)
    explained: dict[int, dict[str, float]] = {}
    if query.explain and terms:
        for index in query.indexes:
            ids = [i.key for i in page if found.where[i.key][0] is index]
            explained.update(bm25.explain_terms(index.content_type.pk, terms, ids))
    hits: list[SearchHit] = []
    for item in page:
        if len(hits) == query.k:  # the rest of the page was resolved only to stand in for deleted objects
            break
        index, oid = found.where[item.key]
        obj = instances.get((index.label, oid))
        if obj is None:  # deleted or left the queryset since it was indexed
            continue
        scores = {name: item.scores.get(name) for name in SIGNALS}
        if composed:  # the keyword signal was fused on photo similarity; its BM25 score is reported
            scores["bm25"] = found.bm25_scores.get(item.key)
        hits.append(
            SearchHit(
                object=obj,
                id=obj.pk,
                type=index.label,
                score=item.score,
                scores=scores,
                ranks={name: item.ranks.get(name) for name in SIGNALS},
                fields=index.display_values(obj),
                explain={
                    "fusion": query.fusion,
                    "contributions": item.contributions,
                    "bm25_terms": explained.get(item.key, {}),
                    "vector_similarities": found.similarities.get(item.key, {}),
                    # Composed query: the keyword signal listed the photo's neighbours matching the words, nearest first.
                    **(
                        {"bm25_scope": "photo_neighbours", "photo_similarity": item.scores.get("bm25")}
                        if composed
                        else {}
                    ),
                }
                if query.explain
                else None,
            )
        )
    return hits
