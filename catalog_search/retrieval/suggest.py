"""``suggest(q)``: what a shopper may be typing, while they type: query completions and a few products.

The last word of ``q`` is a prefix, completed from the catalog; the earlier words (the *head*) are complete
words, corrected as search corrects them (understanding/parse.py, typos.py: "snekers whi" -> "sneakers white").

Completions come from ``SOURCES``, each a function of the typed words returning candidates:

- **catalog words**: the ``Spelling`` rows whose word starts with the prefix (a ``text_pattern_ops`` btree
  index, migration 0008), with their term's document frequency from ``TermStat``: "sne" -> "sneakers";
- **field values**: the query fields' values (``FieldValue``, this process's copy: catalog_search/values.py)
  whose words the typed words begin, possibly spanning head words: "hiking bo" -> "hiking boots" (a product
  type), "red kes" -> "red kestrel" (a brand).

- **popular queries**: what shoppers searched for often (search analytics; retrieval/popular.py) that begins
  with the typed text: "to" -> "tote bag". They come first, most searched first, with the most results
  one of their searches found as their count; the other sources fill the rest.

Ranked by how many products each would find: without head words, a word's document frequency (the products
whose text has it) and a value's count (the products that have it); with head words, the products whose text
has every head word and the completion's words, counted in the first ``SAMPLE`` documents of the head's
rarest term and scaled to that term's document frequency: exact while the term is in at most ``SAMPLE``
documents, an estimate (``estimated``) beyond. A value spanning the whole typed text counts its products.
Completions no product would find are left out; ties rank values first, then alphabetically.

Products: those the first completion finds (its words all in their text), among the first ``SAMPLE``
documents of its rarest term, ranked by the term-frequency part of BM25 over its words (a word in a heavier
field, such as the title, counts more).

What a keystroke costs, per index (docs/benchmarks.md): one statement for the prefix's catalog words and
which head terms are known, one for the head's sample (with a head), two for the products (ranking, then
the objects). ``parse`` runs only when a head term is missing: otherwise it would correct nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.db import DatabaseError, models

from catalog_search import conf, databases, replicas
from catalog_search.analysis import Analyzer, get_analyzer
from catalog_search.exceptions import IndexUnavailable, InvalidQuery
from catalog_search.registry import SearchIndex, indexes_for, jsonable
from catalog_search.retrieval import popular
from catalog_search.retrieval.bm25 import Presence, known_terms
from catalog_search.retrieval.query import _int
from catalog_search.retrieval.understanding.parse import parse
from catalog_search.sql import int_array, text_array
from catalog_search.values import loaded

logger = logging.getLogger(__name__)

MAX_K = 20  # completions per request
MAX_PRODUCTS = 20
SAMPLE = 200  # documents read to count co-occurrences: the cost bound per keystroke (docs/benchmarks.md)
POOL = 50  # documents the products are ranked among
WORD_CANDIDATES = 200  # catalog words per prefix, most frequent first, before counting
MAX_HEAD_WORDS = 8  # a long "query" is not being typed: only its last words are completed


@dataclass(frozen=True)
class Typed:
    """``q`` as suggestions read it: the head's words (folded, corrected), their index terms the catalog has,
    the last word, the prefix, and per index (label) the catalog words it begins (``_lookup``)."""

    head: tuple[str, ...]
    head_terms: frozenset[str]
    prefix: str
    corrections: dict[str, str] = field(default_factory=dict)
    words: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # (word, term, df)


@dataclass
class Completion:
    """A query the shopper may be typing: ``text``, what kind of source named it, and how many products it
    would find (``estimated`` when counted on a sample)."""

    text: str
    source: str  # "word", "value" or "query" (a popular past query)
    count: int | None = None
    estimated: bool = False
    field: str | None = None  # for a value: its query field and the value as the catalog has it
    value: str | None = None
    terms: frozenset[str] = frozenset()  # what a product's text must have to be counted

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "count": self.count,
            "estimated": self.estimated,
            "field": self.field,
            "value": self.value,
        }


@dataclass
class ProductSuggestion:
    """A product the first completion finds: what a dropdown shows of it."""

    object: models.Model
    id: Any
    type: str
    title: str
    price: Any
    image_url: str | None
    url: str | None
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id if isinstance(self.id, int | str) else str(self.id),
            "type": self.type,
            "title": self.title,
            "price": jsonable(self.price),
            "image_url": self.image_url,
            "url": self.url,
        }


@dataclass
class Suggestions:
    query: dict[str, Any]
    completions: list[Completion]
    products: list[ProductSuggestion]
    took_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "completions": [c.as_dict() for c in self.completions],
            "products": [p.as_dict() for p in self.products],
            "took_ms": self.took_ms,
        }


def suggest(q: str | None, *, k: Any = 8, products: Any = None, models: list[str] | None = None) -> Suggestions:
    """Up to ``k`` completions of ``q`` and up to ``products`` (default ``SUGGEST_PRODUCTS``) products the
    first completion finds, over the registered models (or ``models``). An empty ``q``, or one without a
    word, has none. Raises InvalidQuery for bad parameters, IndexUnavailable when the database fails."""
    started = time.perf_counter()
    k = _int("k", k, low=1, high=MAX_K, default=8)
    wanted = _int("products", products, low=0, high=MAX_PRODUCTS, default=conf.settings().SUGGEST_PRODUCTS)
    text = _checked(q)
    try:
        indexes = indexes_for(models or None)
    except LookupError as exc:
        raise InvalidQuery(str(exc)) from None

    def answer() -> tuple[Typed | None, list[Completion], list[ProductSuggestion]]:
        typed = split(text, indexes) if text else None
        completions, samples = _completions(typed, indexes, k) if typed else ([], {})
        found = _products(completions[0], indexes, wanted, samples) if completions and wanted else []
        return typed, completions, found

    try:
        typed, completions, found = replicas.run(answer)  # a read replica, or the primary
    except DatabaseError as exc:
        logger.exception("catalog_search: database error during suggest")
        raise IndexUnavailable(f"The search index is unavailable: {type(exc).__name__}") from exc
    echo: dict[str, Any] = {"q": text, "prefix": typed.prefix if typed else None}
    if typed and typed.corrections:
        echo["corrected"] = {"words": typed.corrections}
    return Suggestions(echo, completions, found, round((time.perf_counter() - started) * 1000, 2))


def _checked(q: Any) -> str | None:
    if q is not None and not isinstance(q, str):
        raise InvalidQuery("'q' must be a string.")
    text = (q or "").strip()
    if len(text) > conf.settings().MAX_QUERY_LENGTH:
        raise InvalidQuery(f"'q' is longer than {conf.settings().MAX_QUERY_LENGTH} characters.")
    if "\x00" in text:
        raise InvalidQuery("'q' contains a null byte.")
    return text or None


def _term(word: str) -> str:
    """The index term of one folded word, "" for a stopword (Snowball in Python costs ~0.1 ms a word: cached)."""
    return _cached_term(get_analyzer(), word)


@lru_cache(maxsize=65536)
def _cached_term(analyzer: Analyzer, word: str) -> str:
    return analyzer.stem([word])[0] if analyzer.tokens(word) else ""


def split(q: str, indexes: Sequence[SearchIndex]) -> Typed | None:
    """The head (corrected as search corrects it) and the prefix of ``q``, with the catalog words the prefix
    begins; None when it has no word.

    ``parse`` reads the head's words less any price phrase, so its terms are among the head's, and corrects
    only a word whose term no document has: when every head term is known it would correct nothing, so it
    is asked only when one is missing (~0.5 ms of Python saved per keystroke), and told which are known."""
    words = get_analyzer().words(q)
    if not words:
        return None
    head, prefix = words[:-1][-MAX_HEAD_WORDS:], words[-1]
    terms = _terms(head)
    models = [index.content_type.pk for index in indexes]
    known, found = _lookup(indexes[0], models, terms, prefix)
    fixes: dict[str, str] = {}
    if len(known) < len(terms) and conf.settings().QUERY_UNDERSTANDING:
        presence = Presence(models)
        presence.record(terms, known)  # the head's terms: the parse's own
        fixes = parse(" ".join(head), indexes, presence=presence).corrections
        if fixes:
            head = [fixes.get(w, w) for w in head]
            terms = _terms(head)
            known = known_terms(terms, models)
    by_index = {indexes[0].label: found}
    for index in indexes[1:]:
        by_index[index.label] = _lookup(index, models, (), prefix)[1]
    # A head word no product has cannot narrow the count: it is left out of it (search would find the rest).
    return Typed(tuple(head), frozenset(known), prefix, fixes, by_index)


def _terms(head: Sequence[str]) -> list[str]:
    """The head's index terms, stopwords left out, each once."""
    return sorted({t for t in map(_term, head) if t})


# The Spelling rows the prefix begins (a text_pattern_ops btree index, migration 0008) with their term's
# TermStat document frequency, most frequent first.
_WORDS_SQL = """
    SELECT 'word', s.word, s.term, t.df FROM catalog_search_spelling s JOIN catalog_search_termstat t
    ON t.content_type_id = s.content_type_id AND t.term = s.term
    WHERE s.content_type_id = %(ct)s AND s.word LIKE %(pattern)s AND t.df > 0
    ORDER BY t.df DESC, s.word LIMIT %(n)s
"""

# With a head, the same statement says which of its terms a document of the searched models has: one
# round trip for what every keystroke needs. Without one, the words alone (the known branch costs ~0.1 ms).
_LOOKUP_SQL = f"""
    SELECT 'known', term, NULL::text, NULL::int FROM catalog_search_termstat
    WHERE term = ANY(%(terms)s::text[]) AND content_type_id = ANY(%(models)s) AND df > 0
    UNION ALL ({_WORDS_SQL})
"""


def _lookup(
    index: SearchIndex, models: list[int], terms: Sequence[str], prefix: str
) -> tuple[set[str], list[tuple[str, str, int]]]:
    """Those of ``terms`` some document of ``models`` has, and the (word, term, df) of the catalog words of
    ``index`` that ``prefix`` begins, the ``WORD_CANDIDATES`` most frequent."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    params = {"ct": index.content_type.pk, "pattern": pattern, "n": WORD_CANDIDATES}
    with databases.connection().cursor() as cursor:
        if terms:
            cursor.execute(_LOOKUP_SQL, {**params, "terms": text_array(terms), "models": models})
        else:
            cursor.execute(_WORDS_SQL, params)
        rows = cursor.fetchall()
    known = {term for kind, term, _, _ in rows if kind == "known"}
    return known, [(word, term, df) for kind, word, term, df in rows if kind == "word"]


# Sources ----------------------------------------------------------------------------------------------


def catalog_words(index: SearchIndex, typed: Typed) -> list[Completion]:
    """The head plus each catalog word the prefix begins (one spelling per term), counted by document
    frequency when there is no head."""
    spellings: dict[str, list[str]] = {}
    frequency: dict[str, int] = {}
    for word, term, df in typed.words.get(index.label, ()):
        if term not in typed.head_terms:  # "blue b" -> not "blue blue"
            spellings.setdefault(term, []).append(word)
            frequency[term] = df
    head = " ".join(typed.head)
    out = []
    for term, words in spellings.items():
        text = f"{head} {_spelling(words)}".strip()
        count = None if typed.head_terms else frequency[term]
        out.append(Completion(text, "word", count=count, terms=typed.head_terms | {term}))
    return out


def _spelling(words: list[str]) -> str:
    """The spelling of a term to show: its shortest, or that one's plural when the catalog has it
    ("sneakers" before "sneaker", "color" before "colorful")."""
    shortest = min(words, key=lambda w: (len(w), w))
    plural = next((p for p in (shortest + "s", shortest + "es") if p in words), None)
    return plural or shortest


@dataclass(frozen=True)
class _Value:
    field: str
    value: str
    words: tuple[str, ...]  # folded
    terms: tuple[str, ...]  # each word's index term ("" for a stopword)
    count: int


_lock = threading.Lock()
_values: dict[int, tuple[int, list[_Value]]] = {}  # content type -> (values version, its values' words)


def _value_words(index: SearchIndex) -> list[_Value]:
    """The index's query-field values as words and terms, rebuilt when this process reloads the values."""
    copy = loaded(index.content_type.pk)
    cached = _values.get(index.content_type.pk)
    if cached is not None and cached[0] == copy.version:
        return cached[1]
    analyzer = get_analyzer()
    built = []
    for query_field in index.understood_fields:
        for value, count in copy.counts.get(query_field.name, {}).items():
            words = tuple(analyzer.words(value))
            if words:
                terms = tuple(map(_term, words))
                built.append(_Value(query_field.name, value, words, terms, count))
    with _lock:
        _values[index.content_type.pk] = (copy.version, built)
    return built


def field_values(index: SearchIndex, typed: Typed) -> list[Completion]:
    """The values the typed words begin, the earliest start in the head first: "hiking bo" -> "hiking
    boots"; "red kes" -> "red kestrel" (the head's words before the value stay)."""
    head_terms = [_term(w) for w in typed.head]
    out = []
    for value in _value_words(index):
        start = _value_start(value, head_terms, typed.prefix)
        if start is None:
            continue
        before = typed.head[:start]
        text = " ".join([*before, value.value.lower()])
        narrowing = typed.head_terms.intersection(map(_term, before))
        exact = not narrowing  # nothing typed before the value narrows it: its products
        terms = narrowing | {t for t in value.terms if t}
        out.append(
            Completion(
                text,
                "value",
                count=value.count if exact else None,
                field=value.field,
                value=value.value,
                terms=terms,
            )
        )
    return out


def _value_start(value: _Value, head_terms: list[str], prefix: str) -> int | None:
    """The first head position from which the typed words begin ``value`` (the last one, the prefix, a
    prefix of its word), or None."""
    for start in range(len(head_terms) + 1):
        typed = head_terms[start:]
        if len(typed) + 1 > len(value.words):
            continue
        if list(value.terms[: len(typed)]) == typed and value.words[len(typed)].startswith(prefix):
            return start
    return None


# The sources of completions from the catalog, in order (popular queries are added apart: _popular).
SOURCES: tuple[Callable[[SearchIndex, Typed], list[Completion]], ...] = (field_values, catalog_words)


# Counting and ranking ---------------------------------------------------------------------------------


def _completions(typed: Typed, indexes: Sequence[SearchIndex], k: int) -> tuple[list[Completion], dict[str, _Sample]]:
    """Every source's candidates over ``indexes``, counted, the same text merged (counts added), best ``k``;
    and the head's sample of each index (the products are picked from it)."""
    merged: dict[str, Completion] = {}
    samples: dict[str, _Sample] = {}
    for index in indexes:
        candidates = [c for source in SOURCES for c in source(index, typed)]
        samples[index.label] = _count(index, typed, candidates)
        for candidate in candidates:
            if not candidate.count:
                continue
            same = merged.get(candidate.text)
            if same is None:
                merged[candidate.text] = candidate
            elif same.source == candidate.source and same.value == candidate.value:  # another model's
                same.count = (same.count or 0) + candidate.count
                same.estimated = same.estimated or candidate.estimated
    order = {source: i for i, source in enumerate(("value", "word"))}
    ranked = sorted(merged.values(), key=lambda c: (-(c.count or 0), order.get(c.source, 9), c.text))
    shown = _popular(typed, k)
    return [*shown, *(c for c in ranked if c.text not in {p.text for p in shown})][:k], samples


def _popular(typed: Typed, k: int) -> list[Completion]:
    """The popular past queries the typed text begins, most searched first (module docstring)."""
    text = " ".join([*typed.head, typed.prefix])
    return [
        Completion(p.text, "query", count=p.results, terms=frozenset(get_analyzer().terms(p.text)))
        for p in popular.starting_with(text, k)
    ]


def _count(index: SearchIndex, typed: Typed, candidates: list[Completion]) -> _Sample:
    """The products each uncounted candidate would find, from the head's sample (module docstring)."""
    pending = [c for c in candidates if c.count is None]
    if not pending:
        return NO_SAMPLE
    wanted = sorted(typed.head_terms.union(*(c.terms for c in pending)))
    sample = _sample(index, typed.head_terms, wanted)
    for candidate in pending:
        hits = len(sample.matching(candidate.terms))
        candidate.count = round(hits * sample.scale)
        candidate.estimated = sample.estimated and hits > 0
    return sample


@dataclass(frozen=True)
class _Sample:
    """The sampled documents that have every required term, by id, and for each wanted term those of them
    that have it: a candidate's count is an intersection of a few sets, not a test of every document (a
    one-letter prefix has a hundred candidates, the sample 200 documents)."""

    ids: list[int]
    holding: dict[str, set[int]]
    scale: float  # documents of the rarest term / documents of it read
    estimated: bool

    def matching(self, terms: frozenset[str]) -> set[int]:
        """The sampled documents whose text has all of ``terms``."""
        if not terms:
            return set(self.ids)
        return set.intersection(*(self.holding.get(term, set()) for term in terms))

    def having(self, terms: frozenset[str]) -> list[int]:
        """The sampled documents whose text has all of ``terms``, by id."""
        found = self.matching(terms)
        return [i for i in self.ids if i in found]


NO_SAMPLE = _Sample([], {}, 0.0, False)


# Which sampled documents have each wanted term, two ways to the same pairs. Few terms: each looked for in
# every document's array (200 x a few array scans in C); many (a short prefix's words): each document's
# terms unnested once and looked up in the wanted set (200 x ~25 rows through the executor). At 100k the
# first is ~0.35 ms cheaper for 2 to 4 terms and dearer from about 10 (1.7x at 24).
FEW_WANTED = 8
_EACH_WANTED = (
    "CROSS JOIN unnest(%(wanted)s::text[]) AS u(t) WHERE d.terms @> %(required)s::text[] AND u.t = ANY(d.terms)"
)
_EACH_TERM = (
    "CROSS JOIN LATERAL unnest(d.terms) AS u(t) WHERE d.terms @> %(required)s::text[] AND u.t = ANY(%(wanted)s::text[])"
)


def _sample(index: SearchIndex, required: frozenset[str], wanted: Sequence[str]) -> _Sample:
    """The first ``SAMPLE`` documents (by id) of the rarest of ``required``, those that have them all, and
    which of them have each of ``wanted``."""
    if not required:
        return NO_SAMPLE
    present = _EACH_WANTED if len(wanted) <= FEW_WANTED else _EACH_TERM
    with databases.connection().cursor() as cursor:
        cursor.execute(
            f"""
            WITH t0 AS (
                SELECT term, df FROM catalog_search_termstat
                WHERE content_type_id = %(ct)s AND term = ANY(%(required)s::text[]) AND df > 0
                ORDER BY df, term LIMIT 1
            ), s AS MATERIALIZED (
                SELECT document_id FROM catalog_search_posting
                WHERE term = (SELECT term FROM t0) AND content_type_id = %(ct)s ORDER BY document_id LIMIT %(n)s
            )
            SELECT (SELECT df FROM t0), u.t, array_agg(d.id)
            FROM s JOIN catalog_search_document d ON d.id = s.document_id {present}
            GROUP BY u.t
            """,
            {"ct": index.content_type.pk, "required": sorted(required), "wanted": text_array(wanted), "n": SAMPLE},
        )
        rows = cursor.fetchall()
    if not rows:
        return NO_SAMPLE
    # One row per wanted term with the documents that have it (fewer rows than documents); every document
    # has the required terms, which are wanted, so their union is the sample.
    holding = {term: set(documents) for _, term, documents in rows}
    df = rows[0][0]
    return _Sample(sorted(set().union(*holding.values())), holding, df / min(df, SAMPLE), df > SAMPLE)


# Products ---------------------------------------------------------------------------------------------


def _products(
    top: Completion, indexes: Sequence[SearchIndex], wanted: int, samples: dict[str, _Sample]
) -> list[ProductSuggestion]:
    """Up to ``wanted`` products whose text has every word of ``top``, best first over ``indexes``: ranked
    among the head's sampled documents that have them when there are some (no second sample to read)."""
    found: list[ProductSuggestion] = []
    for index in indexes:
        sample = samples.get(index.label, NO_SAMPLE)
        pool = sample.having(top.terms)[:POOL] or None  # none there (a value's own count): a pool of its own
        found += _index_products(index, top.terms, wanted, pool)
    found.sort(key=lambda p: -p.score)
    return found[:wanted]


# The pool: the first POOL documents (by id) of the rarest of the terms.
_POOL_SQL = """
    SELECT document_id FROM catalog_search_posting
    WHERE content_type_id = %(ct)s AND term = (
        SELECT term FROM catalog_search_termstat
        WHERE content_type_id = %(ct)s AND term = ANY(%(terms)s::text[]) ORDER BY df, term LIMIT 1)
    ORDER BY document_id LIMIT %(n)s
"""


def _index_products(
    index: SearchIndex, terms: frozenset[str], wanted: int, pool: list[int] | None
) -> list[ProductSuggestion]:
    """The best ``wanted`` of ``pool`` (documents), or of the first documents of the rarest of ``terms``."""
    if not terms:
        return []
    settings = conf.settings()
    pooled = "SELECT unnest(%(pool)s::bigint[]) AS document_id" if pool else _POOL_SQL
    with databases.connection().cursor() as cursor:
        cursor.execute(
            f"""
            WITH s AS MATERIALIZED ({pooled}), c AS (
                SELECT total_length / GREATEST(doc_count, 1) AS avgdl FROM catalog_search_corpusstat
                WHERE content_type_id = %(ct)s
            )
            SELECT p.object_id, sum(p.tf / (p.tf + %(k1)s::float8 * (1 - %(b)s::float8
                                               + %(b)s::float8 * p.length / c.avgdl))) AS score
            FROM s CROSS JOIN unnest(%(terms)s::text[]) AS q(term) CROSS JOIN c
            -- Each (document, term) a probe of the postings' primary key, an index-only read (OFFSET 0: not
            -- flattened into a join, which the planner would make a hash join over all the terms' postings).
            CROSS JOIN LATERAL (
                SELECT document_id, object_id, tf, length FROM catalog_search_posting
                WHERE term = q.term AND document_id = s.document_id AND content_type_id = %(ct)s OFFSET 0
            ) p
            GROUP BY p.document_id, p.object_id HAVING count(*) = %(all)s
            ORDER BY score DESC, p.document_id LIMIT %(k)s
            """,
            {
                "ct": index.content_type.pk,
                "terms": sorted(terms),
                "all": len(terms),
                "n": POOL,
                "pool": int_array(pool or ()),
                "k": wanted + 2,  # a few stand in for objects deleted since they were indexed
                "k1": settings.BM25_K1,
                "b": settings.BM25_B,
            },
        )
        scored = cursor.fetchall()
    pk = index.model._meta.pk
    objects = {
        str(o.pk): o
        for o in databases.using(index.get_queryset()).filter(pk__in=[pk.to_python(oid) for oid, _ in scored])
    }
    out = []
    for oid, score in scored:
        obj = objects.get(oid)
        if obj is not None and len(out) < wanted:
            out.append(_product(index, obj, score))
    return out


def _product(index: SearchIndex, obj: models.Model, score: float) -> ProductSuggestion:
    fields = index.display_values(obj)
    heaviest = max(range(len(index.search_fields)), key=lambda i: index.search_fields[i].weight, default=None)
    title = index.field_texts(obj)[heaviest] if heaviest is not None else ""
    url = obj.get_absolute_url() if hasattr(obj, "get_absolute_url") else None
    price = getattr(obj, index.price_field, None) if index.price_field else None
    return ProductSuggestion(
        object=obj,
        id=obj.pk,
        type=index.label,
        title=title or str(obj),
        price=price,
        image_url=fields.get("image_url"),
        url=url,
        score=float(score),
    )
