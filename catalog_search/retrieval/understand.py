"""Stage 1: what the query says: its understood parts (values, price bounds and typo corrections,
understanding/), its keyword terms (and, with QUERY_EXPANSION, the catalog words its unknown words stand
for), and its vectors."""

from __future__ import annotations

import logging

from catalog_search.analysis import get_analyzer
from catalog_search.encoding.active import active_encoder
from catalog_search.encoding.encoders import normalize
from catalog_search.exceptions import EncoderUnavailable, InvalidFilter
from catalog_search.retrieval import query_cache
from catalog_search.retrieval.context import Part, Search
from catalog_search.retrieval.expansion.words import Expansion, expand, term_groups
from catalog_search.retrieval.query import Filter
from catalog_search.retrieval.understanding import synonyms as staff_synonyms
from catalog_search.retrieval.understanding.parse import Understanding, number, parse, shopping_words

logger = logging.getLogger(__name__)


def understand(search: Search) -> None:
    """The understood parts (hard ones become filters), then the keyword terms of what is left of the query
    with the staff's synonyms applied; with QUERY_EXPANSION, words no document contains get the nearest
    catalog words, searched by keyword (in the word's minimum-should-match group) and in the text the query
    vector encodes."""
    query = search.query
    text = query.q
    if query.q is not None and query.understand:
        understanding = parse(query.q, query.indexes, correct="spelling" not in query.drop, presence=search.presence)
        _apply(search, understanding)
        text = understanding.text
    search.text = text
    search.vector_text = text or query.q  # a query that is only a price phrase still has a text to encode
    if not text:
        return
    terms = get_analyzer().terms(text) if search.uses_keywords else []
    groups: dict[str, list[str]] = {}
    applied = staff_synonyms.apply(text, staff_synonyms.phrases(query.indexes))
    if applied is not None:  # the staff's words: searched as the rules say, never expanded
        search.synonyms, search.vector_text, text = applied.used, applied.text, applied.text
        terms, groups = (applied.terms if terms else []), applied.groups
    added = [term for group in groups.values() for term in group]
    if search.settings.QUERY_EXPANSION:
        staff_words = {word for typed in search.synonyms for word in get_analyzer().tokens(typed)}
        expanded = _expand(search, text, skip=shopping_words() | staff_words)
        groups, added = {**groups, **expanded.groups}, added + expanded.terms
    search.terms = terms + added if terms else []
    if terms and groups:
        search.groups = term_groups(terms, groups)


def _expand(search: Search, text: str, *, skip: frozenset[str] | set[str]) -> Expansion:
    """Query expansion of ``text``'s words no document contains (expansion/words.py)."""
    try:
        search.encoder = active_encoder()
        expanded = expand(text, search.query.indexes, *search.encoder, skip=frozenset(skip), presence=search.presence)
    except EncoderUnavailable:
        return Expansion()
    search.vector_text = expanded.text or search.vector_text
    search.expanded = {word: [w for w, _ in found] for word, found in expanded.added.items()}
    search.expansion_explained = expanded.explained() if search.query.explain else {}
    return expanded


def _apply(search: Search, understanding: Understanding) -> None:
    """The understood parts the request keeps, in ``search.understood``; hard ones also as filters of every
    index that declares their field (an index without it cannot match a hard value: it is not searched)."""
    query = search.query
    search.unexplained = understanding.unexplained
    if understanding.corrections:
        search.corrected = {"q": understanding.corrected_q, "words": understanding.corrections}
    declared = {f.name: f for index in query.indexes for f in index.understood_fields}
    for found in understanding.values:
        if found.field not in query.drop:
            hard = declared[found.field].hard or found.field in query.hard or "all" in query.hard
            search.understood.append(Part(found.field, "exact", found.value, found.words, found.source, hard))
    price_fields = [index.price_field for index in query.indexes if index.price_field]
    for bound in understanding.bounds if price_fields and price_fields[0] not in query.drop else ():
        part = Part(price_fields[0], bound.lookup, number(bound.value), bound.words, "price", True)
        search.understood.append(part)
    for index in list(query.indexes):
        clauses = _filters(search, index)
        if clauses is None:
            query.indexes.remove(index)
            query.index_filters.pop(index.label, None)
        else:
            query.index_filters[index.label] = query.index_filters[index.label] + clauses


def _filters(search: Search, index) -> list[Filter] | None:
    """The hard parts as filter clauses of ``index`` (values of one field OR-ed), None if it lacks a field."""
    clauses: dict[tuple[str, str], list] = {}
    own = {f.name for f in index.understood_fields}
    for part in (p for p in search.understood if p.hard):
        name = part.field if part.lookup == "exact" else index.price_field
        if part.lookup == "exact" and name not in own:
            return None
        if name is None:  # a price bound, and the index has no price field: it is not bounded
            continue
        try:
            value = index.parse_filter_value(name, part.lookup, str(part.value))
        except InvalidFilter as exc:  # "under 1000000000" for a 10-digit decimal: a bound the field cannot hold
            search.warnings.append(f"{part.words!r} not applied: {exc}")
            continue
        clauses.setdefault((name, part.lookup), []).append(value)
    return [Filter(name, lookup, tuple(values)) for (name, lookup), values in clauses.items()]


def embed(search: Search) -> None:
    """The query vector: the text's (from the query-embedding cache), the photo's, or for a photo refined by
    text both combined, with the photo's own kept. Without an encoder a hybrid text query goes on with
    keywords alone, and says so; a photo or ``mode=vector`` query fails."""
    query = search.query
    if not search.wants_vector:
        return
    try:
        search.encoder = search.encoder or active_encoder()
        _, encoder = search.encoder
        if query.image is None:
            search.query_vector = query_cache.text_vector(encoder, search.vector_text)
            return
        image_vector = encoder.encode_images([query.image])[0]
        if search.vector_text is None:
            search.query_vector = image_vector
            return
        # Composed query: move the photo's embedding toward the refinement text ("this, but in red").
        text_vector = query_cache.text_vector(encoder, search.vector_text)
        search.query_vector = normalize(image_vector + search.settings.COMPOSED_TEXT_WEIGHT * text_vector)
        search.photo_vector = image_vector
    except EncoderUnavailable as exc:
        if query.image is not None or query.mode == "vector" or not search.uses_keywords:
            raise
        search.warnings.append(f"vector signal unavailable, keyword results only: {exc.message}")
        logger.warning("catalog_search: %s", exc.message)
