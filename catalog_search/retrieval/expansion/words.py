"""Query expansion (part of the understand stage): words the catalog never uses get the nearest catalog words.

A shopper's word that no indexed text contains ("pocketbook", "teacup", a typo) finds nothing by keyword.
When ``CATALOG_SEARCH["QUERY_EXPANSION"]`` is on, each such word (its index term has no document) is
compared, by cosine of the active encoder's text embeddings of single words, with the catalog's own
words (``Vocabulary``: the surface words of the indexed texts, embedded once per encoder by
indexing/vocabulary.py); the ``EXPANSION_TERMS`` nearest at or above
``EXPANSION_THRESHOLD`` are added to the BM25 terms and appended to the text the query vector is encoded
from (the original words stay in it). Queries whose words are all in the catalog are left unchanged.

It is only as good as the encoder's knowledge of single words: the demo's MiniLM maps "teacup" to "tea",
"gown" to "dress" and "plushie" to "plush", but "ruby" to "emerald" and "telly" to "yo" (docs/relevance.md
measures it). So in English a color name is looked up by its color first (``EXPANSION_COLORS``,
colors.py: "ruby" -> red), then WordNet's synonyms, hypernyms and hyponyms of the word
(``EXPANSION_THESAURUS``, thesaurus.py: "telly" -> tv) come before the encoder's neighbours, and its
co-hyponyms after them. A word and the catalog words added for it are one group for MINIMUM_SHOULD_MATCH
(``term_groups``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from catalog_search import conf
from catalog_search.analysis import Analyzer, get_analyzer
from catalog_search.encoding.encoders import Encoder
from catalog_search.models import Encoder as EncoderRow
from catalog_search.registry import SearchIndex
from catalog_search.retrieval import bm25, query_cache
from catalog_search.retrieval.expansion import colors, thesaurus
from catalog_search.retrieval.expansion.vocabulary import loaded_vocabulary

logger = logging.getLogger(__name__)

CLOSE = 1  # thesaurus relations up to this distance rank before the encoder's neighbours, farther ones after


@dataclass
class Expansion:
    """What expansion made of a query: extra BM25 terms, the text to encode, and word -> [(word, cosine)]."""

    terms: list[str] = field(default_factory=list)
    text: str | None = None
    added: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # query word (or unit) -> the terms added
    # ... -> why each was added: "color", "wordnet <distance>" or "encoder" (explain)
    sources: dict[str, list[str]] = field(default_factory=dict)

    def explained(self) -> dict[str, list[dict]]:
        """What ``explain`` shows: per query word, each added word with why and its cosine to the word."""
        return {
            word: [
                {"word": w, "source": source, "cosine": s}
                for (w, s), source in zip(added, self.sources[word], strict=True)
            ]
            for word, added in self.added.items()
        }


def term_groups(terms: list[str], groups: dict[str, list[str]]) -> dict[str, int]:
    """term -> group for ``bm25.match``: each of the query's ``terms`` is a group of its own, and the terms
    added for a query word (``Expansion.groups``) join that word's group (a two-word unit's terms are
    one group), unless the query has them itself."""
    analyzer = get_analyzer()
    numbers = {term: i for i, term in enumerate(dict.fromkeys(terms))}
    for n, (unit, added) in enumerate(groups.items()):
        own = [t for t in analyzer.terms(unit) if t in numbers]
        number = numbers[own[0]] if own else len(terms) + n  # (a unit's words are query words: not expected)
        for term in own:
            numbers[term] = number
        for term in added:
            numbers.setdefault(term, number)
    return numbers


def _color_terms(words: list[str], analyzer) -> dict[str, list[tuple[str, str]]]:
    """For each of ``words`` that names a color (``EXPANSION_COLORS``, English only), its basic color
    term's spellings and index terms ("ruby" -> [("red", "red")], "slate" -> grey and gray)."""
    if not conf.settings().EXPANSION_COLORS or conf.settings().LANGUAGE != "english":
        return {}
    out = {}
    for word in words:
        basic = colors.basic_color(word.lower())
        if basic is not None:
            spellings = [basic, *(s for s, b in colors.SPELLINGS.items() if b == basic)]
            out[word] = [(s, t[0]) for s in spellings if (t := analyzer.terms(s))]
    return out


def _units(words: list[str], unknown: list[str], wordnet: thesaurus.WordNet | None) -> dict[str, str]:
    """What to expand -> its WordNet key: each unknown word, except that two adjacent unknown words WordNet
    has as one lemma are one unit ("four poster" -> four-poster, "flip flops"), so that its words are not
    expanded apart ("four" -> two, "poster" -> photo)."""
    units = {word: word for word in unknown}
    if wordnet is not None:
        for first, second in zip(words, words[1:], strict=False):
            if first in units and second in units and first != second and (key := wordnet.compound(first, second)):
                del units[first], units[second]
                units[f"{first} {second}"] = key
    return units


@lru_cache(maxsize=65536)  # WordNet's lemmas (at most ~200k), not clients' words: bounded either way
def _one_term(analyzer: Analyzer, lemma: str) -> str | None:
    """The index term of a one-word lemma, None for a multi-word one ("tv set", "four-poster")."""
    if " " in lemma or "-" in lemma:
        return None
    terms = analyzer.terms(lemma)
    return terms[0] if len(terms) == 1 else None


def _thesaurus_terms(
    units: dict[str, str], analyzer, vocab_index: dict[str, int], wordnet: thesaurus.WordNet | None
) -> dict[str, list[tuple[int, int]]]:
    """For each unit, the catalog words WordNet relates to it: [(vocabulary position, distance)], nearest
    first; one-word lemmas whose term the vocabulary has."""
    out: dict[str, list[tuple[int, int]]] = {}
    for unit, key in units.items() if wordnet is not None else ():
        found: dict[int, int] = {}  # vocabulary position -> distance (lemmas may share a term: nearest wins)
        for lemma, distance in wordnet.related(key).items():  # nearest first
            term = _one_term(analyzer, lemma)
            if term in vocab_index:
                found.setdefault(vocab_index[term], distance)
        out[unit] = list(found.items())
    return out


def expand(
    q: str,
    indexes: Sequence[SearchIndex],
    row: EncoderRow,
    encoder: Encoder,
    *,
    skip: frozenset[str] = frozenset(),
    presence: bm25.Presence | None = None,
) -> Expansion:
    """Expand the words of ``q`` that no searched document contains (see the module docstring), except
    those in ``skip`` (words that name no product: "cheap"). ``presence``: the search's term look-ups."""
    analyzer = get_analyzer()
    words = analyzer.tokens(q)
    word_terms = {w: t[0] for w in words if (t := analyzer.terms(w))}
    presence = presence or bm25.Presence([index.content_type.pk for index in indexes])
    known = presence.known(sorted(set(word_terms.values())))
    unknown = [w for w in dict.fromkeys(words) if w in word_terms and word_terms[w] not in known and w not in skip]
    if not unknown:
        return Expansion()
    vocabulary = loaded_vocabulary(row)
    if vocabulary is None:
        logger.info("catalog_search: no vocabulary for %s; run `manage.py catalog_search vocabulary`", row.identity)
        return Expansion()
    vocab_words, vocab_terms, matrix = vocabulary.words, vocabulary.terms, vocabulary.matrix
    threshold = conf.settings().EXPANSION_THRESHOLD
    per_word = conf.settings().EXPANSION_TERMS
    found = Expansion()
    candidates: dict[str, list[tuple[str, str, float, str]]] = {}  # (word, term, cosine, source)
    wordnet = thesaurus.configured()
    try:
        units = _units(words, unknown, wordnet)
        related = _thesaurus_terms(units, analyzer, vocabulary.positions, wordnet)
    except thesaurus.ThesaurusUnavailable as exc:  # damaged files: expand without them, do not fail the search
        logger.warning("catalog_search: %s", exc)
        units, related = {word: word for word in unknown}, {}
    named = _color_terms(list(units), analyzer)
    for word in units:
        similarity = matrix @ query_cache.text_vector(encoder, word)
        # A color name first (colors.py: chosen by the color, not by the encoder), as if its cosine were 1;
        # then the words a dictionary relates closely (synonyms, hypernyms, hyponyms), the encoder breaking
        # ties (it tells which of a word's senses the catalog means); then the encoder's own neighbours;
        # then the dictionary's co-hyponyms and grandparents (weaker: measured in docs/relevance.md).
        ranked = [(spelling, term, 1.0, "color") for spelling, term in named.get(word, [])]
        by_relation = sorted(related.get(word, []), key=lambda item: (item[1], -similarity[item[0]]))
        ranked += [
            (vocab_words[i], vocab_terms[i], float(similarity[i]), f"wordnet {d}") for i, d in by_relation if d <= CLOSE
        ]
        for i in np.argsort(-similarity)[: 4 * per_word + 8]:
            if similarity[i] < threshold:
                break
            ranked.append((vocab_words[i], vocab_terms[i], float(similarity[i]), "encoder"))
        ranked += [
            (vocab_words[i], vocab_terms[i], float(similarity[i]), f"wordnet {d}") for i, d in by_relation if d > CLOSE
        ]
        candidates[word] = ranked
    # A vocabulary word whose term has since left the index would add nothing: skip it.
    live = presence.known(sorted({c[1] for ranked in candidates.values() for c in ranked}))
    for word, ranked in candidates.items():
        chosen: list[tuple[str, str, float, str]] = []
        for candidate in ranked:  # best first; a term once (a color's term may also be an encoder neighbour)
            term = candidate[1]
            if term in live and all(term != c[1] for c in chosen) and len(chosen) < per_word:
                chosen.append(candidate)
        if chosen:
            found.added[word] = [(w, round(s, 4)) for w, _, s, _ in chosen]
            found.terms += [t for _, t, _, _ in chosen]
            found.groups[word] = [t for _, t, _, _ in chosen]
            found.sources[word] = [source for *_, source in chosen]
    if found.added:
        found.text = " ".join([q, *(w for added in found.added.values() for w, _ in added)])
    return found
