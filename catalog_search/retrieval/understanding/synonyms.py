"""The staff's synonyms (catalog_search/synonyms.py) applied to one query's words.

At each position the longest phrase some rule names wins (as for the query fields' values). What a
rule does there:

- an equivalent set ("sneakers, trainers, running shoes"): the words typed stay, and the other terms of
  the set are searched too, in the typed words' group for MINIMUM_SHOULD_MATCH (any of them counts as the
  word, as with query expansion's words);
- a replacement ("tee => t-shirt"): the first term after ``=>`` is searched instead of the typed words, the
  others in its group; the text the query vector encodes says it instead too.

Words a rule names are the staff's own: they are never corrected as typos nor expanded. Values of the
query fields a rule names are recognised through it (understanding/values.py): "trainers" is the product
type sneakers when "sneakers" is a value.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from catalog_search import synonyms
from catalog_search.analysis import get_analyzer
from catalog_search.registry import SearchIndex
from catalog_search.synonyms import Rule


@dataclass(frozen=True)
class Phrases:
    """Index terms of a phrase -> the rules that name it as an input, for one set of rules."""

    rules: dict[tuple[str, ...], list[Rule]] = field(default_factory=dict)
    longest: int = 0


@dataclass(frozen=True)
class Occurrence:
    """Terms ``start:end`` of a query are an input of ``rule``."""

    start: int
    end: int
    rule: Rule


@dataclass
class Applied:
    """A query's keyword terms after the rules, their groups, and what the response shows."""

    terms: list[str]
    groups: dict[str, list[str]]  # a phrase searched -> the terms added in its group (expansion's shape)
    text: str  # the text to encode: replacements made
    used: dict[str, list[str]]  # the words as typed -> what was searched for them too / instead


_lock = threading.Lock()
_built: dict[tuple, Phrases] = {}


def phrases(indexes: Sequence[SearchIndex]) -> Phrases:
    """The phrases of the rules that apply to a search of ``indexes`` (rebuilt when the rules change)."""
    labels = tuple(index.label for index in indexes)
    version, rules = synonyms.for_indexes(labels)
    key = (labels, version)
    cached = _built.get(key)
    if cached is None:
        cached = _build(rules)
        with _lock:
            for old in [k for k in _built if k[0] == labels]:
                del _built[old]
            _built[key] = cached
    return cached


def _build(rules: Sequence[Rule]) -> Phrases:
    analyzer = get_analyzer()
    by_key: dict[tuple[str, ...], list[Rule]] = {}
    for rule in rules:
        for term in rule.inputs:
            key = tuple(analyzer.terms(term))
            if key and rule not in by_key.setdefault(key, []):
                by_key[key].append(rule)
    return Phrases(by_key, max((len(k) for k in by_key), default=0))


def find(terms: Sequence[str], found: Phrases) -> list[Occurrence]:
    """Where ``terms`` name a rule's input, longest first at each position; the first rule saved wins a
    phrase two rules name (the admin shows both)."""
    out: list[Occurrence] = []
    i = 0
    while i < len(terms) and found.longest:
        for length in range(min(found.longest, len(terms) - i), 0, -1):
            rules = found.rules.get(tuple(terms[i : i + length]))
            if rules:
                out.append(Occurrence(i, i + length, rules[0]))
                i += length
                break
        else:
            i += 1
    return out


def covered(occurrences: Sequence[Occurrence]) -> set[int]:
    """The positions the rules name."""
    return {i for o in occurrences for i in range(o.start, o.end)}


def apply(text: str, found: Phrases) -> Applied | None:
    """``text``'s keyword terms and encoded text with the rules applied (module docstring); None when no
    rule names any of its words."""
    if not found.rules:
        return None
    analyzer = get_analyzer()
    words = [(start, end, term) for start, end, own in analyzer.spans(text) for term in own]
    terms = [term for _, _, term in words]
    occurrences = find(terms, found)
    if not occurrences:
        return None
    out = Applied([], {}, "", {})
    pieces, position, at = [], 0, {o.start: o for o in occurrences}
    i = 0
    while i < len(terms):
        occurrence = at.get(i)
        if occurrence is None:
            out.terms.append(terms[i])
            i += 1
            continue
        start, end = words[occurrence.start][0], words[occurrence.end - 1][1]
        typed = text[start:end]
        _searched(out, typed, terms[occurrence.start : occurrence.end], occurrence.rule)
        if not occurrence.rule.two_way:
            pieces += [text[position:start], occurrence.rule.outputs[0]]
            position = end
        i = occurrence.end
    out.text = "".join([*pieces, text[position:]])
    return out


def _searched(out: Applied, typed: str, own: list[str], rule: Rule) -> None:
    """Adds to ``out`` the terms a rule searches for the words ``typed`` (index terms ``own``)."""
    analyzer = get_analyzer()
    if rule.two_way:
        others = [t for t in rule.inputs if analyzer.terms(t) != own]
        out.terms += own
        out.groups[typed] = list(dict.fromkeys(term for t in others for term in analyzer.terms(t)))
        out.used[typed] = others
        return
    first, *rest = rule.outputs
    out.terms += analyzer.terms(first)
    out.groups[first] = list(dict.fromkeys(term for t in rest for term in analyzer.terms(t)))
    out.used[typed] = list(rule.outputs)
