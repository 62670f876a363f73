"""Stage 2: the keyword signal: BM25 over one index's postings, its filter inside the statement.

For an index with facets the statement also counts them over every match it reads
(``facets.keyword_matches_and_counts``): one read of the postings and the shop rows instead of two; the
vector candidates no term matched are counted when they are known (``facets.candidate_counts``). A text
query's statement is independent of the vector search, so it starts first (``start``) and may run on a
second connection meanwhile; ``finish`` takes its result. A photo refined by words searches the words among
the photo's neighbours (``_neighbourhood``), known only once its vector search has run; when the words name
values, ``_asked`` adds the photo's nearest products that have them.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from catalog_search.exceptions import InvalidFilter
from catalog_search.registry import SearchIndex
from catalog_search.retrieval import bm25, facets, parallel
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.filters import FilterPlan, IdList, Passing, Restriction, plan
from catalog_search.retrieval.query import Filter
from catalog_search.retrieval.vector_signal import nearest

Statement = tuple[list[bm25.Hit], facets.Counted | None]


def _statement(
    index: SearchIndex,
    plan: FilterPlan,
    match: bm25.Match,
    *,
    restriction: Restriction | None,
    limit: int,
    with_counts: bool,
    passing: Passing | None,
    own: facets.Own | None = None,
    listed: facets.Listed | None = None,
) -> Statement:
    """The ``limit`` best matches among the objects of ``restriction`` (the postings restricted to it; else
    ``plan``'s), and ``with_counts`` the facet counts over every match in the same statement (with
    ``listed``, the hits' values too). Without counts, BM25 alone, which checks a large filter on its best
    matches (``passing``)."""
    if with_counts:
        both = facets.keyword_matches_and_counts(
            index, plan.filters, match, restriction=restriction, limit=limit, own=own, listed=listed
        )
        if both is not None:
            return both
    hits = bm25.search(
        index.content_type.pk,
        match,
        restriction or plan.restriction,
        limit,
        passing=passing if restriction is None else None,
    )
    return hits, None


def _with_counts(search: Search, index: SearchIndex) -> bool:
    # A photo refined by words with a facet selected: the keyword matches without its own filter are among
    # other neighbours of the photo, counted once known (engine._facets).
    own = search.composed and search.own(index)
    return search.facets_over_matches and facets.counted_with_keywords(index) and not own


def _listed(search: Search, index: SearchIndex) -> facets.Listed | None:
    """Where the count statements put the candidates' values, when the re-rank by understood values will
    test them (boost.py): the query names soft values and the index has query fields. Listing costs the
    count statements more than a query without values gains (its kind vote reads ten rows by itself)."""
    if not search.query.understand or not index.understood_fields or not search.boosts():
        return None
    return search.found.listed.setdefault(index.label, {})


def _scope(search: Search, index: SearchIndex, plan: FilterPlan) -> tuple[Restriction | None, Passing | None]:
    """The postings' restriction and the candidates' check. Disjunctive facets count the matches failing
    their own filter too, so those are scored as well (the statement's candidates still pass every filter)."""
    passing = plan.passing if plan.large else None
    if _with_counts(search, index) and search.own(index):
        return None, plan.passing
    return plan.small, passing


def start(search: Search, index: SearchIndex, plan: FilterPlan) -> parallel.Deferred[Statement] | None:
    """Match the query's terms in the index and, for a text query, start its keyword statement (on the
    helper's connection while the vector search runs, when it may)."""
    if not search.terms:
        return None
    search.matches[index.label] = bm25.match(
        index.content_type.pk, search.terms, search.groups, presence=search.presence
    )
    if search.composed:
        return None
    restriction, passing = _scope(search, index, plan)
    job = partial(
        _statement,
        index,
        plan,
        search.matches[index.label],
        restriction=restriction,
        limit=search.depth,
        with_counts=_with_counts(search, index),
        passing=passing,
        own=search.own(index),
        listed=_listed(search, index),
    )
    return parallel.Deferred(job, allowed=search.query_vector is not None)


def finish(search: Search, index: SearchIndex, plan: FilterPlan, pending: parallel.Deferred[Statement] | None) -> None:
    """The index's keyword candidates (and facet counts), added to ``search``; with too few matches for a
    page, the same with one required term fewer at a time."""
    if not search.terms:
        return
    with_counts = _with_counts(search, index)
    found = search.found
    vector = list(zip(found.vector_documents.get(index.label, []), found.vector_ids.get(index.label, []), strict=True))
    match = search.matches[index.label]
    nearness: dict[str, float] = {}
    if pending is not None:
        (restriction, passing), counts_restriction = _scope(search, index, plan), None
        # Counted while the keyword statement may still be running on its own connection. Which candidates
        # are keyword matches does not depend on restricting the postings to the filter: the counted rows
        # pass it anyway.
        extra = _counts(search, index, plan, match, restriction=None, vector=vector) if with_counts else []
        hits, counts = pending.result()
    else:  # composed: the keyword signal searches the photo's neighbourhood
        nearness = _neighbourhood(search, index, plan)
        # The neighbours passed the filter already, so restricting to them applies it too.
        restriction = counts_restriction = IdList.of(nearness)
        passing = None
        hits, counts = _statement(
            index,
            plan,
            match,
            restriction=restriction,
            limit=search.depth,
            with_counts=with_counts,
            passing=None,
            listed=_listed(search, index),
        )
        extra = (
            _counts(search, index, plan, match, restriction=counts_restriction, vector=vector) if with_counts else []
        )
    while match.required > 1 and len(hits) < search.query.k:
        # Fewer documents have MINIMUM_SHOULD_MATCH of the terms than a page shows: one term fewer is enough,
        # down to any term (as Algolia drops query words while too few results remain). By page size, not
        # offset, so every page of a query is cut from the same ranking.
        match = replace(match, required=match.required - 1)
        hits, counts = _statement(
            index,
            plan,
            match,
            restriction=restriction,
            limit=search.depth,
            with_counts=with_counts,
            passing=passing,
            own=search.own(index),
            listed=_listed(search, index),
        )
        extra = (
            _counts(search, index, plan, match, restriction=counts_restriction, vector=vector) if with_counts else []
        )
    search.matches[index.label] = match
    if counts is not None:
        search.counted[index.label] = counts + extra
    _add(search, index, hits, nearness)
    if search.composed:
        _asked(search, index, plan)


def _counts(
    search: Search,
    index: SearchIndex,
    plan: FilterPlan,
    match: bm25.Match,
    *,
    restriction: Restriction | None,
    vector: list[tuple[int, str]],
) -> facets.Counted:
    """The facet counts the keyword statement left: the vector candidates no term matched (facets.py)."""
    own, listed = search.own(index), _listed(search, index)
    return facets.candidate_counts(
        index, plan.filters, match, restriction=restriction, candidates=vector, own=own, listed=listed
    )


def _neighbourhood(search: Search, index: SearchIndex, plan: FilterPlan) -> dict[str, float]:
    """A composed query's photo neighbourhood: object id -> similarity of the products nearest to the photo
    alone (the same kind of product, in any color). Over the whole catalog the refinement's words would
    retrieve every product of that color, of any kind (docs/relevance.md)."""
    assert search.photo_vector is not None and search.encoder is not None
    neighbours = nearest(search, index, plan, search.photo_vector, all_similarities=False)
    nearness = {h.object_id: h.score for h in neighbours}
    search.found.neighbourhood[index.label] = nearness
    search.found.photo_similarity.update((h.document_id, h.score) for h in neighbours)
    return nearness


def _add(search: Search, index: SearchIndex, hits: list[bm25.Hit], nearness: dict[str, float]) -> None:
    found = search.found
    for hit in hits:
        found.where[hit.document_id] = (index, hit.object_id)
        if search.composed:
            # Among products matching a refinement word, BM25 scores differ mostly by text length, which says
            # nothing about which one the shopper photographed: closeness to it does.
            found.bm25.append((hit.document_id, nearness[hit.object_id]))
            found.bm25_scores[hit.document_id] = hit.score
            # At most `depth` neighbours, so this lists every keyword match among them.
            found.neighbour_matches.setdefault(index.label, []).append(hit.object_id)
        else:
            found.bm25.append((hit.document_id, hit.score))


def _asked(search: Search, index: SearchIndex, scope: FilterPlan) -> None:
    """A photo refined by words that name values ("this, but in blue"): the photo's nearest products with
    every named value, from the whole catalog, join the keyword signal's candidates, scored like its others
    by closeness to the photo. The re-rank puts exactly these first (boost.py), but the photo's neighbours
    may hold none of them and, in a large catalog, the composed vector's candidates may miss them. As many
    as a signal's candidates (``search.depth``), not one page: the photo's nearest blue products are often
    look-alikes of another kind, and the tier's order (photo_order.py) needs the photo's own kind among
    them. The named values only: the photo's kind, voted later, is a guess, never a filter."""
    clauses = _asked_clauses(search, index) if search.query.understand else []
    if not clauses:
        return
    assert search.photo_vector is not None
    within = plan(index, scope.filters + clauses, search.settings.EXACT_SEARCH_MAX_ROWS)
    hits = nearest(search, index, within, search.photo_vector, all_similarities=False)
    found = search.found
    found.photo_similarity.update((hit.document_id, hit.score) for hit in hits)
    listed = set(found.neighbour_matches.get(index.label, []))
    seen = listed | set(found.vector_ids.get(index.label, []))
    new = [hit for hit in hits if hit.object_id not in listed]
    for hit in new:
        found.where[hit.document_id] = (index, hit.object_id)
        found.bm25.append((hit.document_id, hit.score))
        found.neighbour_matches.setdefault(index.label, []).append(hit.object_id)
    uncounted = [(hit.document_id, hit.object_id) for hit in new if hit.object_id not in seen]
    if index.label in search.counted and uncounted:  # the keyword statement counted the rest
        search.counted[index.label] += facets.candidate_counts(
            index,
            scope.filters,
            search.matches[index.label],
            restriction=IdList.of(found.neighbourhood.get(index.label, {})),
            candidates=uncounted,
            own=search.own(index),
            more=True,
            listed=_listed(search, index),
        )


def _asked_clauses(search: Search, index: SearchIndex) -> list[Filter]:
    """The soft understood values of ``index``'s query fields as filter clauses (values of one field
    OR-ed, fields AND-ed); none when a value's field is not the index's or the field cannot hold it."""
    wanted = search.boosts()
    own = {f.name for f in index.understood_fields}
    if not wanted or not set(wanted) <= own:
        return []
    clauses = []
    for name in sorted(wanted):
        values = []
        for value in sorted(wanted[name]):
            try:
                values.append(index.parse_filter_value(name, "exact", value))
            except InvalidFilter:  # a synonym naming a value of another type: no product has it
                continue
        if not values:
            return []
        clauses.append(Filter(name, "exact", tuple(values)))
    return clauses
