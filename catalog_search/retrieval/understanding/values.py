"""Recognising the query fields' values in a query's words: "crimson tote" -> color red, product type handbag.

Phrases are compared as index terms, so plurals and stems match ("hiking boot", "Totes"). Where a value can
be named (in this order of trust): the value itself as the catalog has it ("hiking boots"); a synonym the
``QueryField`` declares ("tote" -> handbag); for a field with ``colors=True``, an English color name: the
value of its basic color nearest to it ("maroon" -> red; "aqua" -> teal where the shop has teal, else
blue: expansion/colors.py ``nearest_values``); and for a word no document contains, a
WordNet synonym that is a value ("pocketbook" -> handbag). Only values some indexed object has are named.

Ambiguity, one rule: at each position of the query the longest phrase wins ("red wine glass" is a product
type, not the color red and a wine glass); between fields, the one declared first on the index
(``SearchIndex.query_fields`` is in priority order); a phrase naming several values of that field names
all of them (a synonym may map to several).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from catalog_search import synonyms
from catalog_search.analysis import Analyzer, get_analyzer
from catalog_search.registry import SearchIndex
from catalog_search.retrieval.expansion import colors
from catalog_search.synonyms import Rule
from catalog_search.values import loaded


class Thesaurus(Protocol):
    def related(self, word: str) -> dict[str, int]: ...


MAX_PHRASE_WORDS = 6  # longer values ("a value" that is a sentence) are not looked for in queries


@dataclass(frozen=True)
class Recognised:
    """A value named by the query words ``start:end`` (``words`` as typed); ``source`` says how."""

    field: str
    value: str
    words: str
    source: str  # "value", "synonym", "color", "wordnet" (and "photo": the understand stage's)
    start: int
    end: int


@dataclass
class Matcher:
    """Phrase (index terms) -> [(field priority, field, value, source)] over some indexes' values."""

    phrases: dict[tuple[str, ...], list[tuple[int, str, str, str]]] = field(default_factory=dict)
    longest: int = 1

    def add(self, terms: Sequence[str], entry: tuple[int, str, str, str]) -> None:
        key = tuple(terms)
        if not key or len(key) > MAX_PHRASE_WORDS:
            return
        entries = self.phrases.setdefault(key, [])
        if all((e[1], e[2]) != (entry[1], entry[2]) for e in entries):
            entries.append(entry)
        self.longest = max(self.longest, len(key))

    def best(self, key: tuple[str, ...]) -> list[tuple[int, str, str, str]]:
        """The entries of ``key`` of its highest-priority field (every value of that field it names)."""
        entries = self.phrases.get(key)
        if not entries:
            return []
        top = min(e[0] for e in entries)
        return [e for e in entries if e[0] == top]


_lock = threading.Lock()
_matchers: dict[tuple, Matcher] = {}


def _terms(analyzer: Analyzer, text: str) -> list[str]:
    return analyzer.terms(text)


@lru_cache(maxsize=4096)  # the survey's one-word names: a bounded set
def _color_term(analyzer: Analyzer, name: str) -> str | None:
    terms = analyzer.terms(name)
    return terms[0] if len(terms) == 1 else None


def field_order(indexes: Sequence[SearchIndex]) -> dict[str, int]:
    """Query field name -> priority (0 highest) over ``indexes``: each index's order, first index first."""
    order: dict[str, int] = {}
    for index in indexes:
        for query_field in index.understood_fields:
            order.setdefault(query_field.name, len(order))
    return order


def matcher(indexes: Sequence[SearchIndex]) -> Matcher:
    """The matcher of ``indexes``' current values (rebuilt when a process reloads them)."""
    copies = [loaded(index.content_type.pk) for index in indexes]
    labels = tuple(index.label for index in indexes)
    version, rules = synonyms.for_indexes(labels)
    key = (labels, version, *(copy.version for copy in copies))
    cached = _matchers.get(key)
    if cached is None:
        cached = _build(indexes, [copy.counts for copy in copies], rules)
        with _lock:
            for old in [k for k in _matchers if k[0] == labels]:
                del _matchers[old]  # the same indexes' older values or synonyms
            _matchers[key] = cached
    return cached


def _build(
    indexes: Sequence[SearchIndex], loaded: Sequence[dict[str, dict[str, int]]], rules: Sequence[Rule] = ()
) -> Matcher:
    analyzer = get_analyzer()
    order = field_order(indexes)
    found = Matcher()
    for index, counts in zip(indexes, loaded, strict=True):
        for query_field in index.understood_fields:
            present = counts.get(query_field.name, {})
            priority = order[query_field.name]
            by_terms: dict[tuple[str, ...], list[str]] = {}
            for value in present:
                terms = _terms(analyzer, value)
                found.add(terms, (priority, query_field.name, value, "value"))
                by_terms.setdefault(tuple(terms), []).append(value)
            for word, target in [*query_field.synonyms.items(), *_staff_pairs(rules)]:
                for one in [target] if isinstance(target, str) else target:
                    # A synonym names the catalog's spelling of its value ("Sneakers" for "sneakers").
                    for value in by_terms.get(tuple(_terms(analyzer, one)), []):
                        found.add(_terms(analyzer, word), (priority, query_field.name, value, "synonym"))
            if query_field.colors and analyzer.language == "english":
                for name, value in colors.nearest_values(list(present)).items():
                    term = _color_term(analyzer, name)
                    if term and (term,) not in found.phrases:  # a value or synonym of its own comes first
                        found.add((term,), (priority, query_field.name, value, "color"))
    return found


def _staff_pairs(rules: Sequence[Rule]) -> list[tuple[str, tuple[str, ...]]]:
    """(word, the terms it names) of the staff's synonyms: each term of an equivalent set names the others,
    each input of a replacement its outputs."""
    pairs = []
    for rule in rules:
        for word in rule.inputs:
            pairs.append((word, tuple(t for t in rule.inputs if t != word) if rule.two_way else rule.outputs))
    return pairs


def recognise(
    tokens: Sequence[str], terms: Sequence[str], found: Matcher, *, unknown: set[int], wordnet: Thesaurus | None
) -> list[Recognised]:
    """The values ``tokens`` name, longest phrase first at each position (see the module docstring).
    ``unknown`` holds the positions of words no document contains: those may also be WordNet synonyms."""
    out: list[Recognised] = []
    i = 0
    while i < len(terms):
        for length in range(min(found.longest, len(terms) - i), 0, -1):
            entries = found.best(tuple(terms[i : i + length]))
            if entries:
                words = " ".join(tokens[i : i + length])
                out += [Recognised(e[1], e[2], words, e[3], i, i + length) for e in entries]
                i += length
                break
        else:
            # A color name is the color survey's (colors.py), not WordNet's: its synsets join "purple" and "blue".
            if i in unknown and wordnet is not None and colors.basic_color(tokens[i]) is None:
                out += _wordnet_values(tokens[i], i, found, wordnet)
            i += 1
    return out


def _wordnet_values(token: str, position: int, found: Matcher, wordnet: Thesaurus) -> list[Recognised]:
    """The values WordNet's synonyms of ``token`` name (every sense: "pocketbook" is a wallet and a handbag),
    of the highest-priority field among them."""
    analyzer = get_analyzer()
    entries = [
        entry
        for lemma, distance in wordnet.related(token).items()
        if distance == 0
        for entry in found.best(tuple(_terms(analyzer, lemma)))
    ]
    if not entries:
        return []
    top = min(e[0] for e in entries)
    named = dict.fromkeys((e[1], e[2]) for e in entries if e[0] == top)
    return [Recognised(f, v, token, "wordnet", position, position + 1) for f, v in named]
