"""The catalog's words embedded by the active encoder, as one process holds them (built by
indexing/vocabulary.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from catalog_search import databases
from catalog_search.models import Encoder as EncoderRow
from catalog_search.models import Vocabulary

_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedVocabulary:
    """A vocabulary as one process holds it: words, their terms, their vectors and term -> position."""

    built_at: object
    words: list[str]
    terms: list[str]
    matrix: np.ndarray
    positions: dict[str, int]


_loaded: dict[int, LoadedVocabulary] = {}  # encoder pk -> its vocabulary


def loaded_vocabulary(row: EncoderRow) -> LoadedVocabulary | None:
    """The stored vocabulary of ``row``, loaded once per process (reloaded when rebuilt)."""
    built = databases.using(Vocabulary.objects).filter(encoder=row).values_list("built_at", flat=True).first()
    if built is None:
        return None
    with _lock:
        cached = _loaded.get(row.pk)
        if cached is None or cached.built_at != built:
            stored = databases.using(Vocabulary.objects).get(encoder=row)
            matrix = np.frombuffer(bytes(stored.vectors), dtype=np.float32).reshape(len(stored.words), row.dim)
            terms = list(stored.terms)
            positions = {term: i for i, term in enumerate(terms)}
            cached = _loaded[row.pk] = LoadedVocabulary(built, list(stored.words), terms, matrix, positions)
    return cached
