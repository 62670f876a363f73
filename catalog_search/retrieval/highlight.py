"""Highlighting (``highlight=1``): each result's displayed text fields with the query's terms marked.

A word is marked when the analyzer that indexed it (analysis.py: folding, stopwords, stemming) turns it into
a term the search looked for: "sneakers" marks "Sneaker", "cafe" marks "Café", "the" marks nothing. Those
terms are the ones the keyword signal searches: of the query's text as the signals search it (price phrases
left out, typo corrections in, so "snekers" marks "sneakers") and of the catalog words query expansion
added for a word the catalog lacks; for a vector-only search, the same terms. A value query understanding
recognised through a synonym ("tote" -> handbag) only boosts that field value: it marks no other word.

The fields are the index's text fields that it also displays (``text_fields`` named in ``display_fields``),
so a result's ``highlight`` is keyed like its ``fields`` and a page can show one in place of the other.
Each is the field's whole text (no snippets), read as indexing reads it. Every character outside the
``<mark>`` tags is HTML-escaped: the value is safe to insert as HTML.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django.db import models
from django.utils.html import escape

from catalog_search.analysis import get_analyzer
from catalog_search.registry import SearchIndex
from catalog_search.relations import parse_text_path


def query_terms(text: str | None, keyword_terms: Iterable[str], expanded: dict[str, list[str]]) -> frozenset[str]:
    """The terms to mark: of ``text`` (the query as the signals searched it), the keyword signal's own
    (``keyword_terms``, empty for a vector-only search) and the catalog words expansion added."""
    analyzer = get_analyzer()
    added = " ".join(word for words in expanded.values() for word in words)
    return frozenset(analyzer.terms(text or "")) | frozenset(keyword_terms) | frozenset(analyzer.terms(added))


def mark(text: str, terms: Collection[str]) -> str:
    """``text`` HTML-escaped, each word that yields one of ``terms`` wrapped in ``<mark>``. The marks are on
    the original characters ("Sneaker", not the term "sneaker")."""
    out: list[str] = []
    done = 0
    for start, end, word_terms in get_analyzer().spans(text) if terms else ():
        if any(term in terms for term in word_terms):
            out += [escape(text[done:start]), "<mark>", escape(text[start:end]), "</mark>"]
            done = end
    out.append(escape(text[done:]))
    return "".join(out)


def highlighted_fields(index: SearchIndex) -> list[str]:
    """The fields a result of ``index`` gets highlighted: its text fields that it displays."""
    displayed = set(index.display_fields)
    return [f.name for f in index.search_fields if f.name in displayed]


def highlights(index: SearchIndex, instance: models.Model, terms: Collection[str]) -> dict[str, str]:
    """``{field: marked text}`` for one result."""
    return {name: mark(parse_text_path(index.model, name).read(instance), terms) for name in highlighted_fields(index)}
