"""BM25 parity: scores computed in SQL from stored statistics equal Lucene's BM25 as rank-bm25 computes it
(the oracle; bm25s' "lucene" method agrees) on the same analyzed tokens, after a build and after incremental
updates and deletions."""

from __future__ import annotations

import math
import random

import bm25s
import numpy as np
import pytest
import rank_bm25
from django.conf import settings
from django.db import connection
from django.test import override_settings

from catalog_search import get_index
from catalog_search.analysis import get_analyzer
from catalog_search.indexing import documents, sync
from catalog_search.retrieval import bm25
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

WORDS = (
    "leather canvas wool silk cotton denim linen suede velvet tote bag backpack wallet boot sneaker "
    "sandal scarf glove hat jacket coat dress shirt skirt lamp chair sofa mug bowl kettle red blue green "
    "black white yellow pink purple orange grey striped dotted checked plain warm light heavy small large "
    "classic modern vintage sporty elegant casual waterproof handmade"
).split()


def _text(rng: random.Random, n: int) -> str:
    # Zipf-like draw so some words are common (low idf) and many rare.
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    return " ".join(rng.choices(WORDS, weights=weights, k=n))


class LuceneBM25(rank_bm25.BM25):
    """rank-bm25's BM25 with Lucene's idf, ``ln(1 + (N - n + 0.5) / (n + 0.5))``, and Lucene's term-frequency
    saturation without the ``k1 + 1`` factor (Elasticsearch, bm25s "lucene"; docs/architecture.md)."""

    def __init__(self, corpus: list[list[str]], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        super().__init__(corpus)

    def _calc_idf(self, nd: dict[str, int]) -> None:
        self.idf = {term: math.log(1 + (self.corpus_size - n + 0.5) / (n + 0.5)) for term, n in nd.items()}

    def get_scores(self, query: list[str]) -> np.ndarray:
        scores = np.zeros(self.corpus_size)
        norm = self.k1 * (1 - self.b + self.b * np.array(self.doc_len) / self.avgdl)
        for term in set(query):
            tf = np.array([doc.get(term, 0) for doc in self.doc_freqs], dtype=float)
            scores += self.idf.get(term, 0.0) * tf / (tf + norm)
        return scores


def _oracle_tokens(article: Article) -> list[str]:
    """The ArticleIndex weights are headline x2, body x1: integer weights equal repeated tokens."""
    analyzer = get_analyzer()
    return analyzer.terms(article.headline) * 2 + analyzer.terms(article.body)


# How many of n query terms a document must contain, per MINIMUM_SHOULD_MATCH rule (worked out by hand
# from Elasticsearch's definition: a percentage is rounded down; a negative value counts missing terms).
REQUIRED = {
    1: [1, 1, 1, 1, 1, 1],
    2: [1, 2, 2, 2, 2, 2],
    -1: [1, 1, 2, 3, 4, 5],
    "75%": [1, 1, 2, 3, 3, 4],
    "-25%": [1, 2, 3, 3, 4, 5],
    "-34%": [1, 2, 2, 3, 4, 4],
    "100%": [1, 2, 3, 4, 5, 6],
    "0%": [1, 1, 1, 1, 1, 1],
}


@pytest.mark.parametrize("rule", list(REQUIRED))
def test_required_terms_follow_the_rule(rule):
    assert [bm25.required_terms(n, rule) for n in range(1, 7)] == REQUIRED[rule]


def test_the_default_rule_is_75_percent():
    """Unless a shop sets MINIMUM_SHOULD_MATCH: 2 of 3 terms, 3 of 4, either of 2 (docs/configuration.md)."""
    with override_settings(
        CATALOG_SEARCH={k: v for k, v in settings.CATALOG_SEARCH.items() if k != "MINIMUM_SHOULD_MATCH"}
    ):
        assert [bm25.required_terms(n) for n in range(1, 7)] == REQUIRED["75%"]


@pytest.mark.parametrize("rule", ["", "abc", "%", "75 %", "101%", "-101%", "1.5", True, None, 2.0])
def test_a_malformed_rule_is_refused(rule):
    with pytest.raises(ValueError):
        bm25.parse_rule(rule)


def _check_parity(index, rng: random.Random, queries: int = 40, rule: int | str = 1, grouped: bool = False) -> int:
    """SQL BM25 under MINIMUM_SHOULD_MATCH ``rule`` against rank-bm25 (and bm25s): the same scores, for exactly the
    documents holding at least REQUIRED of the query's terms that the corpus has; ``grouped``: terms in
    random groups (as query expansion makes them), the rule counting groups instead of terms."""
    articles = list(index.get_queryset().order_by("pk"))
    corpus = [_oracle_tokens(a) for a in articles]
    oracle = LuceneBM25(corpus, k1=1.2, b=0.75)
    peer = bm25s.BM25(method="lucene", k1=1.2, b=0.75, dtype="float64")
    peer.index(corpus, show_progress=False)
    vocabulary = {token for tokens in corpus for token in tokens}
    ct = index.content_type.pk
    compared = 0
    with override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, "MINIMUM_SHOULD_MATCH": rule}):
        for _ in range(queries):
            terms = sorted(set(get_analyzer().terms(_text(rng, rng.randint(1, 6)))))
            expected = oracle.get_scores(terms)
            assert expected == pytest.approx(peer.get_scores(terms), rel=1e-9, abs=1e-9), "the oracles disagree"
            group = {t: rng.randrange(max(1, len(terms) // 2)) if grouped else i for i, t in enumerate(terms)}
            present = {group[t] for t in terms if t in vocabulary}
            required = REQUIRED[rule][len(present) - 1] if present else 1
            found = bm25.match(ct, terms, group if grouped else None)
            got = {hit.object_id: hit.score for hit in bm25.search(ct, found, None, limit=100_000)}
            for article, tokens, score in zip(articles, corpus, expected, strict=True):
                if score > 0 and len({group[t] for t in set(tokens) & set(terms)}) >= required:
                    assert got.pop(str(article.pk)) == pytest.approx(score, rel=1e-9, abs=1e-6)
                    compared += 1
            assert got == {}, "SQL BM25 matched documents the oracle did not"
    return compared


def _stored_stats_match_postings(ct: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.term, count(*) FROM catalog_search_posting p JOIN catalog_search_document d "
            "ON d.id = p.document_id WHERE d.content_type_id = %s GROUP BY p.term",
            [ct],
        )
        recomputed = dict(cursor.fetchall())
        # The copies of each document's fields in its postings (what scoring reads) equal the document.
        cursor.execute(
            "SELECT count(*) FROM catalog_search_posting p LEFT JOIN catalog_search_document d "
            "ON d.id = p.document_id WHERE d.id IS NULL OR p.content_type_id <> d.content_type_id "
            "OR p.object_id <> d.object_id OR p.length <> d.length"
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT term, df FROM catalog_search_termstat WHERE content_type_id = %s", [ct])
        assert dict(cursor.fetchall()) == recomputed
        cursor.execute("SELECT count(*), sum(length) FROM catalog_search_document WHERE content_type_id = %s", [ct])
        docs, total = cursor.fetchone()
        cursor.execute("SELECT doc_count, total_length FROM catalog_search_corpusstat WHERE content_type_id = %s", [ct])
        stored_docs, stored_total = cursor.fetchone()
    assert stored_docs == docs and stored_total == pytest.approx(total)


def test_bm25_matches_oracle_after_build_updates_and_deletes(encoder):
    rng = random.Random(1234)
    index = get_index(Article)
    for i in range(300):
        Article.objects.create(
            headline=_text(rng, rng.randint(2, 6)), body=_text(rng, rng.randint(0, 40)), section=f"s{i % 5}"
        )
    sync.reindex(index, encoder, batch_size=64)
    assert _check_parity(index, rng) > 500
    for rule in ("-25%", "75%", "100%", 2, -1):
        assert _check_parity(index, rng, 20, rule) > 50
        assert _check_parity(index, rng, 20, rule, grouped=True) > 50
    _stored_stats_match_postings(index.content_type.pk)

    # Incremental: rewrite 60 articles, delete 40, unpublish 10 (the queryset hook drops them), add 20.
    articles = list(Article.objects.order_by("?")[:110])
    for article in articles[:60]:
        article.headline = _text(rng, rng.randint(1, 5))
        article.body = _text(rng, rng.randint(0, 60))
        article.save()
    sync.index_instances(index, articles[:60], encoder)
    deleted = [a.pk for a in articles[60:100]]
    Article.objects.filter(pk__in=deleted).delete()
    documents.remove_objects(index, deleted)
    Article.objects.filter(pk__in=[a.pk for a in articles[100:]]).update(published=False)
    new = [Article.objects.create(headline=_text(rng, 3), body=_text(rng, 20), section="new") for _ in range(20)]
    report = sync.reindex(index, encoder, object_ids=[a.pk for a in articles[100:]] + [a.pk for a in new])
    assert report.removed == 10 and report.indexed == 20
    assert _check_parity(index, rng) > 300
    assert _check_parity(index, rng, 20, "-25%") > 50
    _stored_stats_match_postings(index.content_type.pk)


def test_filters_apply_inside_the_bm25_query(encoder):
    index = get_index(Article)
    for i in range(30):
        Article.objects.create(headline=f"leather bag {i}", body="leather", section="a" if i < 3 else "b", rating=i)
    sync.reindex(index, encoder)
    from catalog_search.retrieval.filters import object_ids_sql
    from catalog_search.retrieval.query import parse_filters

    _, per_index = parse_filters({"section": "a"}, [index])
    hits = bm25.search(index.content_type.pk, ["leather"], object_ids_sql(index, per_index["testapp.article"]), 2)
    # Limit 2 among the 3 matching section "a": the filter acts before the LIMIT, not after.
    assert len(hits) == 2
    assert {Article.objects.get(pk=h.object_id).section for h in hits} == {"a"}
    assert np.all(np.diff([h.score for h in hits]) <= 0)


@pytest.mark.parametrize("section", ["b", "a"], ids=["large-filter-checked-on-candidates", "falls-back-inside"])
def test_checking_candidates_gives_the_same_hits_as_the_filter_inside(encoder, section):
    """With ``passing`` (the engine's path for a filter keeping many objects) the best unfiltered matches
    are checked against the filter; the result equals the filter applied inside the SQL, and when too
    few of them pass it falls back to exactly that."""
    from functools import partial

    from django.test.utils import CaptureQueriesContext

    from catalog_search.retrieval.filters import object_ids_sql, passing_ids
    from catalog_search.retrieval.query import parse_filters

    rng = random.Random(3)
    index = get_index(Article)
    Article.objects.bulk_create(
        Article(headline=_text(rng, 3), body=_text(rng, 15), section="a" if i % 40 == 0 else "b") for i in range(1200)
    )
    sync.reindex(index, encoder)
    _, per_index = parse_filters({"section": section}, [index])
    filter_sql = object_ids_sql(index, per_index[index.label])
    passing = partial(passing_ids, index, per_index[index.label])
    ct = index.content_type.pk
    for terms in (["wool"], ["red", "lamp"], ["scarf", "cotton", "modern"]):
        inside = bm25.search(ct, terms, filter_sql, 60)
        with CaptureQueriesContext(connection) as queries:
            checked = bm25.search(ct, terms, filter_sql, 60, passing=passing)
        # Same hits and scores (summation order may differ in the last bit, so ties are compared rounded).
        assert _ranked(checked) == _ranked(inside)
        assert len(checked) == min(60, len(inside))
        filter_inside = any(
            "catalog_search_posting" in q["sql"] and "section" in q["sql"] for q in queries.captured_queries
        )
        matches = len(bm25.search(ct, terms, None, 100_000))
        # Section "b" keeps 97.5%: 60 of the best 1000 always pass. Section "a" keeps 2.5%: unless every
        # match fits in the first 1000, fewer than 60 of them pass and the filter goes inside.
        assert filter_inside == (section == "a" and matches > 1000)


def _ranked(hits) -> list[tuple[float, str]]:
    return sorted((-round(h.score, 9), h.object_id) for h in hits)
