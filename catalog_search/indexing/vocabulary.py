"""The catalog's words embedded by the active encoder, for query expansion (retrieval/expansion/): built by
the periodic sweep when the catalog has gained words, or at once by ``manage.py catalog_search vocabulary``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from django.db import connection

from catalog_search import conf
from catalog_search.analysis import get_analyzer
from catalog_search.encoding.active import active_encoder
from catalog_search.encoding.encoders import Encoder
from catalog_search.exceptions import EncoderUnavailable
from catalog_search.models import Encoder as EncoderRow
from catalog_search.models import Vocabulary
from catalog_search.registry import SearchIndex, get_indexes


def catalog_words(indexes: Sequence[SearchIndex] | None = None) -> tuple[list[str], list[str]]:
    """The surface words of the indexed texts and their index terms: per term its most frequent spelling
    (alphabetic words of two letters or more; numbers and codes are not worth embedding)."""
    analyzer = get_analyzer()
    spellings: dict[str, Counter[str]] = {}
    for index in indexes if indexes is not None else get_indexes():
        for instance in index.with_related(index.get_queryset()).iterator(chunk_size=2000):
            for word in analyzer.tokens(index.get_text(instance)):
                if len(word) > 1 and word.isalpha():
                    term = analyzer.terms(word)
                    if term:
                        spellings.setdefault(term[0], Counter())[word] += 1
    terms = sorted(spellings)
    return [spellings[t].most_common(1)[0][0] for t in terms], terms


def build_vocabulary(row: EncoderRow, encoder: Encoder, indexes: Sequence[SearchIndex] | None = None) -> int:
    """Embed the catalog's words with ``encoder`` and store them for ``row``; the number of words."""
    words, terms = catalog_words(indexes)
    vectors = encoder.encode_texts(words).astype(np.float32) if words else np.zeros((0, row.dim), np.float32)
    Vocabulary.objects.update_or_create(
        encoder=row, defaults={"words": words, "terms": terms, "vectors": vectors.tobytes()}
    )
    return len(words)


# The catalog may gain this share of words (at least REFRESH_MIN_NEW) the vocabulary lacks before the
# sweep rebuilds it; a word that left the catalog needs no rebuild (expand() skips it).
REFRESH_SHARE = 0.02
REFRESH_MIN_NEW = 10
_REFRESH_LOCK = 0x63617456  # pg advisory lock key: one vocabulary build at a time across workers


def refresh() -> str:
    """Sweep step (tasks.sweep): with QUERY_EXPANSION on, build the active encoder's vocabulary when it
    has none (a new encoder after a switch, or the setting just turned on) or when the catalog has
    gained words it lacks; returns what it did."""
    if not conf.settings().QUERY_EXPANSION:
        return "off"
    try:
        row, encoder = active_encoder()
    except EncoderUnavailable as exc:
        return f"no vocabulary: {exc.message}"
    stored = Vocabulary.objects.filter(encoder=row).values_list("terms", flat=True).first()
    if stored is not None:
        new = _new_terms(list(stored))
        if new < max(REFRESH_MIN_NEW, REFRESH_SHARE * len(stored)):
            return "current"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_REFRESH_LOCK])
        if not cursor.fetchone()[0]:
            return "being built by another worker"
        try:
            count = build_vocabulary(row, encoder)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_REFRESH_LOCK])
    return f"built {count} words for {row.identity}"


def _new_terms(known: list[str]) -> int:
    """Indexed word terms (letters only, like catalog_words' words) that ``known`` lacks."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT term) FROM catalog_search_termstat WHERE df > 0 AND term ~ '^[[:alpha:]]{2,}$' "
            "AND NOT (term = ANY(%s))",
            [known],
        )
        return int(cursor.fetchone()[0])
