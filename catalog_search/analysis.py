"""Text analyzer shared by indexing and querying: the same text always yields the same terms.

Pipeline: Unicode NFKC, case folding, accent stripping (so "Café" matches "cafe"), tokenization on
Unicode word characters, stopword removal, Snowball stemming.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import snowballstemmer

from catalog_search import conf

# Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET): small on purpose, so product
# words like "off", "over" or "top" survive.
ENGLISH_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
BUILTIN_STOPWORDS = {"english": ENGLISH_STOPWORDS}

_TOKEN = re.compile(r"\w+", re.UNICODE)
MAX_TOKEN_LENGTH = 64  # longer "words" are noise (hashes, base64) and would bloat the postings


class Analyzer:
    """Turns text into index terms for one language."""

    def __init__(self, language: str | None = "english", stopwords: Iterable[str] | None = None):
        self.language = language
        self._stemmer = snowballstemmer.stemmer(language) if language else None
        if stopwords is None:
            stopwords = BUILTIN_STOPWORDS.get(language or "", ())
        self.stopwords = frozenset(self._fold(w) for w in stopwords)

    @staticmethod
    def _fold(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).casefold()
        decomposed = unicodedata.normalize("NFD", text)
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch))

    def tokens(self, text: str) -> list[str]:
        """Folded words with stopwords removed, before stemming."""
        words = _TOKEN.findall(self._fold(text))
        return [w for w in words if len(w) <= MAX_TOKEN_LENGTH and w not in self.stopwords and w != "_"]

    def terms(self, text: str) -> list[str]:
        """Index terms of ``text`` in order, duplicates kept (term frequencies matter)."""
        words = self.tokens(text)
        return self._stemmer.stemWords(words) if self._stemmer else words


@lru_cache(maxsize=8)
def _analyzer(language: str | None, stopwords: tuple[str, ...] | None) -> Analyzer:
    return Analyzer(language, stopwords)


def get_analyzer() -> Analyzer:
    """The analyzer configured by ``CATALOG_SEARCH['LANGUAGE']`` and ``['STOPWORDS']``."""
    stopwords = conf.get("STOPWORDS")
    return _analyzer(conf.get("LANGUAGE"), tuple(stopwords) if stopwords is not None else None)
