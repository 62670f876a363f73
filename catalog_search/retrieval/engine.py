"""``search()``: query -> understand -> keyword and vector signals -> fuse -> facets -> resolve -> results.

Each stage is a function of one per-search context (context.Search) in a module of its own:
understand.py, keyword_signal.py, vector_signal.py, disjunctive.py, then fusion, facets, sorting.py and
resolve.py. Facet counts are mostly made inside the keyword signal's statement (keyword_signal.py says
where); ``_facets`` counts the rest, with the matched set's size (``total``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError

from catalog_search import replicas
from catalog_search.exceptions import IndexUnavailable
from catalog_search.retrieval import (
    bm25,
    boost,
    disjunctive,
    facets,
    fusion,
    keyword_signal,
    parallel,
    ranking,
    rules,
    sorting,
    vector_signal,
)
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.filters import plan
from catalog_search.retrieval.query import build_query
from catalog_search.retrieval.resolve import resolve
from catalog_search.retrieval.results import SearchResults, Total
from catalog_search.retrieval.understand import embed, understand

logger = logging.getLogger(__name__)


def search(
    q: str | None = None,
    image: Any = None,
    *,
    filters: dict[str, Any] | None = None,
    k: int = 20,
    offset: int = 0,
    mode: str = "hybrid",
    fusion: str | None = None,
    alpha: float | None = None,
    explain: bool = False,
    models: list[str] | None = None,
    rrf_k: int | None = None,
    understand: bool | None = None,
    hard: Any = None,
    drop: Any = None,
    sort: str | None = None,
    highlight: bool = False,
    ranking: float | None = None,
) -> SearchResults:
    """Search the registered models.

    ``q`` is text, ``image`` a photo (bytes, file object or PIL image); both together make a composed
    query ("this, but in red"). ``filters`` use Django lookup style on declared filter fields
    (``{"category": ["bags", "shoes"], "price__lte": 50}``). ``models`` limits the search to some
    registered models ("shop.product"). ``fusion`` (default ``CATALOG_SEARCH['DEFAULT_FUSION']``) is "rrf" or
    "weighted" (``alpha``: the vector signal's weight, default ``DEFAULT_ALPHA``). ``rrf_k`` overrides
    ``CATALOG_SEARCH['RRF_K']`` (tuning). Raises InvalidQuery (and subclasses) for bad input and
    ServiceUnavailable when the index or the encoder cannot answer.

    Query understanding (``understand``, default ``CATALOG_SEARCH['QUERY_UNDERSTANDING']``) recognises the
    indexes' query field values, price phrases and typos in ``q`` (docs/relevance.md): values boost, except
    fields named in ``hard`` (or "all") which filter; ``drop`` leaves understood fields (or "spelling": the
    corrections) out.

    ``sort`` is "relevance" (the default), a field the indexes declare in ``sort_fields`` ("price"), or
    "-price" for descending: the matched set (what the facets count) in that order, then by primary key.
    ``results.total`` says how many products matched (docs/api.md).

    ``highlight`` fills each hit's ``highlights``: its displayed text fields, HTML-escaped, with the words
    that match the query's terms (stems, corrections and expansions included) in ``<mark>`` (highlight.py).

    ``ranking`` multiplies the indexes' business ranking weights (``SearchIndex.ranking_signals``,
    ranking.py): 1 by default, 0 for relevance alone.
    """
    started = time.perf_counter()
    query = build_query(
        q=q,
        image=image,
        filters=filters,
        k=k,
        offset=offset,
        mode=mode,
        fusion=fusion,
        alpha=alpha,
        explain=explain,
        models=models,
        understand=understand,
        hard=hard,
        drop=drop,
        sort=sort,
        highlight=highlight,
        ranking=ranking,
    )
    try:
        with parallel.search_running():
            # On the first usable read replica, or the primary; again on the next copy if a replica fails.
            return replicas.run(lambda: _run(Search.start(query, rrf_k), started))
    except DatabaseError as exc:
        logger.exception("catalog_search: database error during search")
        raise IndexUnavailable(f"The search index is unavailable: {type(exc).__name__}") from exc


def _run(search: Search, started: float) -> SearchResults:
    understand(search)
    embed(search)
    for index in search.query.indexes:
        scope = plan(index, search.query.index_filters[index.label], search.settings.EXACT_SEARCH_MAX_ROWS)
        pending = keyword_signal.start(search, index, scope)
        vector_signal.retrieve(search, index, scope)
        keyword_signal.finish(search, index, scope, pending)
        disjunctive.retrieve(search, index)
    boost.photo_kind(search)
    rules.match(search)
    fused = ranking.ranked(search, _fuse(search))  # business ranking joins relevance
    ranked = rules.placed(search, boost.rerank(search, rules.boosted(search, fused)))
    matches, ids = _matched(search, ranked)
    tally = _facets(search, matches, ids)
    page = (
        rules.placed(search, sorting.order(search, ranked, matches=matches, ids=ids)) if search.query.sort else ranked
    )
    hits = resolve(search, page)
    return SearchResults(
        query=search.echo(),
        results=hits,
        facets=tally.facets,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        warnings=search.warnings,
        total=_total(search, ranked, tally),
    )


def _fuse(search: Search) -> list[fusion.Fused]:
    """One ranking from each signal's candidates over every searched model."""
    found, query = search.found, search.query
    # Several models: merge their lists by score (one ranked list per signal). Rounded: a BM25 sum can differ
    # in its last bit between query plans; equal scores rank by document id.
    found.bm25.sort(key=lambda h: (-round(h[1], 9), h[0]))
    found.vector.sort(key=lambda h: (-h[1], h[0]))
    signals = {}
    if search.terms or query.mode == "bm25":
        signals["bm25"] = found.bm25[: search.depth]
    if search.query_vector is not None:
        signals["vector"] = found.vector[: search.depth]
    search.signals = tuple(signals)
    if query.fusion == "weighted":
        return fusion.weighted(signals, {"vector": query.alpha, "bm25": 1.0 - query.alpha})
    return fusion.rrf(signals, search.rrf_k)


def _matched(search: Search, ranked: list[fusion.Fused]) -> tuple[dict[str, bm25.Match] | None, dict[str, list[str]]]:
    """The facets' matched set per index label: the keyword matches (None: not part of it) and object ids
    (vector candidates, ...). With FACETS_OVER "results" the fused candidates: every result the query can
    page through. Disjunctive facets add the candidates of the searches without a selected facet's filter."""
    found = search.found
    if search.facets_over_matches:
        matches = search.matches if "bm25" in search.signals and not search.composed else None
        ids = dict(found.matched_ids(search.composed)) if "vector" in search.signals else {}
    else:
        matches, ids = None, {}
        for item in ranked:
            index, oid = found.where[item.document_id]
            ids.setdefault(index.label, []).append(oid)
    for label, extra in found.unselected.items():
        ids[label] = ids.get(label, []) + [oid for _, oid in extra]
    return matches, ids


def _facets(search: Search, matches: dict[str, bm25.Match] | None, ids: dict[str, list[str]]) -> facets.Tally:
    """Facet counts over the matched set (most were counted by the keyword statements), and its size."""
    query = search.query
    return facets.tally(
        query.indexes,
        query.index_filters,
        matches=matches,
        vector_ids=ids,
        done=search.counted if search.facets_over_matches else None,
        own={index.label: search.own(index) for index in query.indexes},
    )


def _total(search: Search, ranked: list[fusion.Fused], tally: facets.Tally) -> Total:
    """The matched set's size: exact where it was counted. A model without a single-valued facet adds its
    fused candidates, and with FACETS_OVER "results" (the set is the fused candidates) a signal that
    returned a full list may have had more: then at least that many."""
    found = search.found
    value = tally.total + sum(1 for item in ranked if found.where[item.document_id][0].label in tally.uncounted)
    full = len(found.bm25) >= search.depth or len(found.vector) >= search.depth
    bounded = bool(tally.uncounted) or (not search.facets_over_matches and full)
    return Total(value, "gte" if bounded else "eq")
