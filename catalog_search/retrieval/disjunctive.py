"""Multi-select facets (DISJUNCTIVE_FACETS): each facet the request filters on is counted over the matched
set of the same query without its own filter, so ticking "red" keeps "blue" and its count (OR within a
field, AND across fields: Algolia's disjunctive faceting, Elasticsearch's ``post_filter``).

The keyword part costs nothing more: the keyword statement reads the matches failing one selected facet's
filter too, flagged, and counts each facet over the rows passing the other facets' filters (facets.py). The
vector signal's candidates depend on the filter, so for each selected facet this stage searches the
nearest products once more under the other filters (and, for a photo refined by words, the photo's
neighbourhood and the keyword matches in it; with FACETS_OVER "results" also the best keyword matches).
Those candidates join the facets' matched set; the ones failing a selected facet's filter count only for
that facet. The results, the ``total`` and a sort are over the candidates passing every filter.
"""

from __future__ import annotations

from catalog_search.registry import SearchIndex
from catalog_search.retrieval import bm25, facets
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.filters import FilterPlan, IdList, plan
from catalog_search.retrieval.vector_signal import nearest


def retrieve(search: Search, index: SearchIndex) -> None:
    """The candidates of the searches without each selected facet's own filter that the query's own do not
    have, in ``search.found.unselected``; counted at once when the keyword statement counted the rest."""
    own = search.own(index)
    if not own:
        return
    found = search.found
    seen = set(found.vector_ids.get(index.label, [])) | set(found.neighbour_matches.get(index.label, []))
    extra: dict[str, int] = {}
    filters = search.query.index_filters[index.label]
    for clauses in own.values():
        others = [c for c in filters if not any(c is o for o in clauses)]
        for document_id, object_id in _candidates(
            search, index, plan(index, others, search.settings.EXACT_SEARCH_MAX_ROWS)
        ):
            if object_id not in seen:
                extra.setdefault(object_id, document_id)
    found.unselected[index.label] = [(d, o) for o, d in extra.items()]
    if index.label in search.counted and extra:  # the rest was counted with the keyword statement
        search.counted[index.label] += facets.candidate_counts(
            index,
            filters,
            search.matches[index.label],
            restriction=None,
            candidates=found.unselected[index.label],
            own=own,
            more=True,
        )


def _candidates(search: Search, index: SearchIndex, scope: FilterPlan) -> list[tuple[int, str]]:
    """(document id, object id) of what the query's signals retrieve under ``scope``, where the facets'
    matched set has them: vector candidates, a composed query's keyword matches among the photo's
    neighbours, and with FACETS_OVER "results" the best keyword matches."""
    out: list[tuple[int, str]] = []
    if search.query_vector is not None and search.encoder is not None:
        out += [
            (h.document_id, h.object_id)
            for h in nearest(search, index, scope, search.query_vector, all_similarities=False)
        ]
    match = search.matches.get(index.label)
    if match is None:
        return out
    if search.composed:
        assert search.photo_vector is not None
        neighbours = nearest(search, index, scope, search.photo_vector, all_similarities=False)
        within = IdList.of(h.object_id for h in neighbours)
        out += [(h.document_id, h.object_id) for h in bm25.search(match.content_type_id, match, within, search.depth)]
    elif not search.facets_over_matches:
        passing = scope.passing if scope.large else None
        hits = bm25.search(match.content_type_id, match, scope.small, search.depth, passing=passing)
        out += [(h.document_id, h.object_id) for h in hits]
    return out
