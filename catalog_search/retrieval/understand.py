"""Stage 1: what the query says: its keyword terms (and, with QUERY_EXPANSION, the catalog words its
unknown words stand for), and its vectors."""

from __future__ import annotations

import contextlib
import logging

from catalog_search.analysis import get_analyzer
from catalog_search.encoding.active import active_encoder
from catalog_search.encoding.encoders import normalize
from catalog_search.exceptions import EncoderUnavailable
from catalog_search.retrieval import query_cache
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.expansion.words import expand, term_groups

logger = logging.getLogger(__name__)


def understand(search: Search) -> None:
    """The keyword terms; with QUERY_EXPANSION, words no document contains get the nearest catalog words,
    searched by keyword (in the word's minimum-should-match group) and in the text the query vector encodes."""
    query = search.query
    if search.uses_keywords and query.q:
        search.terms = get_analyzer().terms(query.q)
    search.vector_text = query.q
    if query.q is None or not search.settings.QUERY_EXPANSION:
        return
    with contextlib.suppress(EncoderUnavailable):
        search.encoder = active_encoder()
        expanded = expand(query.q, query.indexes, *search.encoder)
        if search.terms and expanded.groups:  # no terms in vector mode
            search.groups = term_groups(search.terms, expanded.groups)
            search.terms = search.terms + expanded.terms
        search.vector_text = expanded.text or query.q
        search.expanded = {word: [w for w, _ in found] for word, found in expanded.added.items()}
        search.expansion_explained = expanded.explained() if query.explain else {}


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
