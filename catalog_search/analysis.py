"""Text analyzer shared by indexing and querying: the same text always yields the same terms.

Pipeline: Unicode NFKC, case folding, accent stripping (so "Café" matches "cafe"; marks that spell a
different word, such as the Devanagari virama or Japanese voicing marks, stay), tokenization on
Unicode word characters (letters, digits and the vowel signs of scripts such as Devanagari), stopword
removal, Snowball stemming.
"""

from __future__ import annotations

import itertools
import re
import threading
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


def _mark_ranges() -> str:
    """Regex ranges of the combining marks ``\\w`` leaves out. Brahmic vowel signs (the "ि" in "हिंदी") are
    marks, so without them words of Hindi, Bengali, Tamil, ... would be cut into fragments. Marks only
    occur in Unicode planes 0, 1 and 14."""
    ranges: list[list[int]] = []
    for cp in itertools.chain(range(0x20000), range(0xE0000, 0xE1000)):
        if unicodedata.category(chr(cp)).startswith("M"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_TOKEN = re.compile(rf"\w[\w{_mark_ranges()}]*")
MAX_TOKEN_LENGTH = 64  # longer "words" are noise (hashes, base64) and would bloat the postings


def _is_accent(combining_class: int) -> bool:
    """Whether a mark of this canonical combining class is an accent to strip: Latin, Greek and Cyrillic
    diacritics (classes 200+) and Hebrew/Arabic/Syriac vowel points (10-36). Nukta, virama, kana voicing
    marks (7-9) and Thai, Lao, Tibetan and Telugu signs (84-132) spell different words: they stay."""
    return 10 <= combining_class <= 36 or combining_class >= 200


class Analyzer:
    """Turns text into index terms for one language."""

    def __init__(self, language: str | None = "english", stopwords: Iterable[str] | None = None):
        language = language.lower() if language else None
        if language and language not in snowballstemmer.algorithms():
            raise ValueError(
                f"No Snowball stemmer for language {language!r} (CATALOG_SEARCH['LANGUAGE']); use None or one of "
                f"{', '.join(sorted(snowballstemmer.algorithms()))}."
            )
        self.language = language
        self._local = threading.local()  # Snowball stemmers keep per-word state: one per thread
        # Highlighting analyzes result texts word by word (spans): a catalog repeats its words.
        self._word_terms = lru_cache(maxsize=50_000)(lambda word: tuple(self.terms(word)))
        if stopwords is None:
            stopwords = BUILTIN_STOPWORDS.get(language or "", ())
        self.stopwords = frozenset(self._fold(w) for w in stopwords)

    @staticmethod
    def _fold(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).casefold()
        decomposed = unicodedata.normalize("NFD", text)
        stripped = "".join(ch for ch in decomposed if not _is_accent(unicodedata.combining(ch)))
        return unicodedata.normalize("NFC", stripped)  # recompose what is left (Hangul syllables, kana, ...)

    def _stemmer(self):
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = snowballstemmer.stemmer(self.language)
        return stemmer

    def tokens(self, text: str) -> list[str]:
        """Folded words with stopwords removed, before stemming."""
        words = _TOKEN.findall(self._fold(text))
        return [w for w in words if len(w) <= MAX_TOKEN_LENGTH and w not in self.stopwords and w.strip("_")]

    def words(self, text: str) -> list[str]:
        """Folded words, stopwords kept: the words of a query as the shopper typed them (suggestions)."""
        return [w for w in _TOKEN.findall(self._fold(text)) if len(w) <= MAX_TOKEN_LENGTH and w.strip("_")]

    def terms(self, text: str) -> list[str]:
        """Index terms of ``text`` in order, duplicates kept (term frequencies matter)."""
        return self.stem(self.tokens(text))

    def stem(self, words: list[str]) -> list[str]:
        """The index terms of ``words`` (tokens): one each."""
        return self._stemmer().stemWords(words) if self.language else list(words)

    def spans(self, text: str) -> list[tuple[int, int, list[str]]]:
        """``(start, end, terms)`` for each word of ``text``: its offsets in ``text`` itself (highlighting
        marks the shop's own characters, not the folded copy) and the index terms it yields (none for a
        stopword; folding can split one word, "½" -> 1, 2). A character that becomes a word character only
        when folded ("™" -> tm) joins its word in the index but not here, the one case where they differ."""
        return [(m.start(), m.end(), list(self._word_terms(m.group()))) for m in _TOKEN.finditer(text)]


@lru_cache(maxsize=8)
def _analyzer(language: str | None, stopwords: tuple[str, ...] | None) -> Analyzer:
    return Analyzer(language, stopwords)


def get_analyzer() -> Analyzer:
    """The analyzer configured by ``CATALOG_SEARCH['LANGUAGE']`` and ``['STOPWORDS']``."""
    stopwords = conf.settings().STOPWORDS
    return _analyzer(conf.settings().LANGUAGE, tuple(stopwords) if stopwords is not None else None)
