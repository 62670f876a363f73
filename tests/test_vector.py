"""Filtered vector retrieval: a selective filter still returns k results, identical to exact search."""

from __future__ import annotations

import json
import random
from functools import partial

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from catalog_search import get_index
from catalog_search.indexing import sync, vectors
from catalog_search.models import Encoder as EncoderRow
from catalog_search.retrieval import vector
from catalog_search.retrieval.filters import count_filtered, object_ids_sql, passing_ids
from catalog_search.retrieval.query import parse_filters
from catalog_search.sql import vector_literal
from tests.test_bm25 import WORDS
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db


@pytest.fixture
def articles(encoder):
    rng = random.Random(7)
    Article.objects.bulk_create(
        Article(
            headline=" ".join(rng.choices(WORDS, k=4)),
            body=" ".join(rng.choices(WORDS, k=12)),
            section="rare" if i % 100 == 0 else f"common{i % 7}",
        )
        for i in range(3000)
    )
    index = get_index(Article)
    sync.reindex(index, encoder, batch_size=500)
    return index


def _exact_top(encoder, index, query_vector: np.ndarray, section: str | list[str], k: int) -> list[str]:
    """Brute force in numpy over the stored vectors of the filtered articles: the oracle."""
    sections = [section] if isinstance(section, str) else section
    rows = list(Article.objects.filter(section__in=sections).order_by("pk"))
    vectors = encoder.encode_texts([index.get_text(a) for a in rows])
    similarity = vectors @ query_vector
    order = sorted(range(len(rows)), key=lambda i: (-similarity[i], rows[i].pk))
    return [str(rows[i].pk) for i in order[:k]]


@pytest.mark.parametrize("exact_max_rows", [0, 5000], ids=["hnsw-iterative-scan", "exact-path"])
def test_one_percent_filter_returns_k_results_identical_to_exact(articles, encoder, exact_max_rows):
    index = articles
    row = EncoderRow.objects.get(state="active")
    _, per_index = parse_filters({"section": "rare"}, [index])
    filter_sql = object_ids_sql(index, per_index[index.label])
    assert Article.objects.filter(section="rare").count() == 30  # 1% of 3000
    with override_settings(CATALOG_SEARCH={"MODEL": encoder.name, "EXACT_SEARCH_MAX_ROWS": exact_max_rows}):
        for query in ("warm wool scarf", "red leather tote", "modern lamp", "striped cotton shirt"):
            qvec = encoder.encode_texts([query])[0]
            hits = vector.search(
                qvec,
                encoder_id=row.pk,
                dim=row.dim,
                content_type_id=index.content_type.pk,
                weights={"text": 1.0},
                restriction=filter_sql,
                limit=10,
            )
            assert len(hits) == 10
            assert [h.object_id for h in hits] == _exact_top(encoder, index, qvec, "rare", 10)
            assert all(Article.objects.get(pk=h.object_id).section == "rare" for h in hits)


def _search(encoder, index, filters: dict, query: str, k: int, passing=None, **settings):
    """vector.search under ``settings``; returns the hits and whether the exact (filtered-sort) path ran."""
    row = EncoderRow.objects.get(state="active")
    _, per_index = parse_filters(filters, [index])
    filter_sql = object_ids_sql(index, per_index[index.label])
    qvec = encoder.encode_texts([query])[0]
    with (
        override_settings(CATALOG_SEARCH={"MODEL": encoder.name, **settings}),
        CaptureQueriesContext(connection) as queries,
    ):
        hits = vector.search(
            qvec,
            encoder_id=row.pk,
            dim=row.dim,
            content_type_id=index.content_type.pk,
            weights={"text": 1.0},
            restriction=filter_sql,
            limit=k,
            passing=passing,
        )
    exact_ran = any("OFFSET 0" in q["sql"] for q in queries.captured_queries)
    return qvec, hits, exact_ran


@pytest.mark.parametrize("checker", ["sql", "orm"])
def test_large_filter_over_fetches_through_hnsw_and_matches_exact(articles, encoder, checker):
    """A filter keeping 4/7 of the catalog: the unfiltered HNSW walk + a check of its candidates answers,
    with no exact scan, and the result equals brute force over the filtered rows."""
    index = articles
    sections = ["common0", "common1", "common2", "common3"]
    _, per_index = parse_filters({"section": sections}, [index])
    orm = partial(passing_ids, index, per_index[index.label]) if checker == "orm" else None
    for query in ("warm wool scarf", "red leather tote", "modern lamp"):
        qvec, hits, exact_ran = _search(
            encoder, index, {"section": sections}, query, 20, orm, EXACT_SEARCH_MAX_ROWS=100, FILTERED_ANN_DEPTH=300
        )
        assert not exact_ran
        assert [h.object_id for h in hits] == _exact_top(encoder, index, qvec, sections, 20)


def test_over_fetch_goes_on_along_the_same_walk_until_enough_pass(articles, encoder):
    """A filter keeping 1/7 of the catalog: the first 2 * k walked rows hold too few that pass, so the same
    walk (one cursor, one graph search) is read further, by the share that passed, until k pass; no exact
    scan, and the result equals brute force over the filtered rows."""
    index = articles
    for query in ("warm wool scarf", "red leather tote"):
        with CaptureQueriesContext(connection) as queries:
            qvec, hits, exact_ran = _search(
                encoder, index, {"section": "common3"}, query, 10, EXACT_SEARCH_MAX_ROWS=100, FILTERED_ANN_DEPTH=1000
            )
        statements = [q["sql"] for q in queries.captured_queries]
        assert not exact_ran
        assert sum("DECLARE catalog_search_walk" in sql for sql in statements) == 1
        fetches = [sql for sql in statements if sql.startswith("FETCH FORWARD")]
        assert fetches[0] == "FETCH FORWARD 20 FROM catalog_search_walk" and len(fetches) >= 2
        assert [h.object_id for h in hits] == _exact_top(encoder, index, qvec, "common3", 10)


def test_filter_rejecting_the_neighbourhood_falls_back_to_exact(articles, encoder):
    """Over-fetching 50 rows finds too few of a 1% filter: the exact path answers, still k results."""
    index = articles
    qvec, hits, exact_ran = _search(
        encoder, index, {"section": "rare"}, "striped cotton shirt", 10, EXACT_SEARCH_MAX_ROWS=0, FILTERED_ANN_DEPTH=50
    )
    assert exact_ran
    assert [h.object_id for h in hits] == _exact_top(encoder, index, qvec, "rare", 10)


def test_the_exact_path_reads_only_the_filtered_rows_through_the_object_index(articles, encoder):
    """The filter's ids are looked up in the (encoder, content type, object id) index, not joined with a
    scan of the whole table (at 100k products 2x slower: docs/architecture.md, vector retrieval)."""
    index = articles
    sections = ["common0", "common1", "common2", "common3"]  # 4/7 of the rows: a hash join's best case
    with CaptureQueriesContext(connection) as queries:
        qvec, hits, exact_ran = _search(encoder, index, {"section": sections}, "modern lamp", 10)
    assert exact_ran
    assert [h.object_id for h in hits] == _exact_top(encoder, index, qvec, sections, 10)
    (statement,) = [q["sql"] for q in queries.captured_queries if "OFFSET 0" in q["sql"]]
    with connection.cursor() as cursor:
        # The planner's view of a database in use (autovacuum analyzes it), not of a table just filled.
        cursor.execute("ANALYZE catalog_search_embedding, testapp_article")
        cursor.execute("EXPLAIN " + statement)
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert "Index Scan using catalog_search_emb_obj on catalog_search_embedding" in plan, plan
    assert "Seq Scan on catalog_search_embedding" not in plan, plan


def test_a_small_filter_is_one_exact_statement_without_the_walks_settings(articles, encoder):
    """Exact over a small filter's rows: no HNSW settings and no transaction for them (three round trips);
    a walk (no filter) still sets them."""
    with CaptureQueriesContext(connection) as queries:
        qvec, hits, exact_ran = _search(encoder, articles, {"section": "rare"}, "modern lamp", 10)
    assert exact_ran and [h.object_id for h in hits] == _exact_top(encoder, articles, qvec, "rare", 10)
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any("hnsw." in sql or "SAVEPOINT" in sql for sql in statements), statements
    row = EncoderRow.objects.get(state="active")
    with CaptureQueriesContext(connection) as queries:
        vector.search(qvec, encoder_id=row.pk, dim=row.dim, content_type_id=articles.content_type.pk,
                      weights={"text": 1.0}, restriction=None, limit=10)  # fmt: skip
    assert any("hnsw.ef_search" in q["sql"] for q in queries.captured_queries)


def test_passing_ids_checks_candidates_against_the_filter(articles):
    index = articles
    _, per_index = parse_filters({"section": "rare"}, [index])
    rare = {str(pk) for pk in Article.objects.filter(section="rare").values_list("pk", flat=True)}
    some = [str(pk) for pk in Article.objects.order_by("pk").values_list("pk", flat=True)[:250]]
    assert passing_ids(index, per_index[index.label], some + ["not-a-number", ""]) == rare & set(some)


def test_unfiltered_search_uses_the_hnsw_index(articles, encoder):
    row = EncoderRow.objects.get(state="active")
    qvec = vector_literal(encoder.encode_texts(["wool"])[0])
    with connection.cursor() as cursor:
        # Current statistics, as autovacuum keeps them: with a stale estimate (9 rows, from an earlier
        # test's table) the planner rightly sorts 9 rows instead of walking the index.
        cursor.execute("ANALYZE catalog_search_embedding")
        cursor.execute(
            f"EXPLAIN SELECT document_id FROM catalog_search_embedding e WHERE e.encoder_id = {row.pk} "
            f"AND e.text IS NOT NULL ORDER BY e.text::vector({row.dim}) <=> %s::vector({row.dim}) LIMIT 10",
            [qvec],
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert vectors.vector_index_name(row, "text") in plan, plan


def test_search_page_and_facets_are_the_same_whichever_way_the_filter_is_applied(articles, encoder):
    """search() with a filter keeping 4/7 of the articles: applied inside the queries (default settings:
    it keeps fewer than EXACT_SEARCH_MAX_ROWS) or checked on over-fetched candidates (threshold 0), the
    engine returns the same page, scores and facets."""
    import catalog_search

    filters = {"section": ["common0", "common1", "common2", "common3"]}
    pages = {}
    for threshold in (5000, 0):
        with override_settings(CATALOG_SEARCH={"MODEL": encoder.name, "EXACT_SEARCH_MAX_ROWS": threshold}):
            with CaptureQueriesContext(connection) as queries:
                found = catalog_search.search(q="red wool scarf", filters=filters, k=20, models=["testapp.article"])
            inside = any("OFFSET 0" in q["sql"] for q in queries.captured_queries)
            assert inside == (threshold == 5000)
            pages[threshold] = (
                [(hit.id, round(hit.score, 9), hit.ranks) for hit in found],
                found.facets,
            )
    assert len(pages[0][0]) == 20
    assert pages[0] == pages[5000]


@pytest.mark.parametrize("filters", [{}, {"section": "rare"}, {"section": ["common0", "common1", "common2"]}])
def test_one_column_search_scores_from_its_own_distances(articles, encoder, filters):
    """Searching one column, the walk's own distances give the scores: the same hits and scores as the
    second pass over the vectors (rescore), without that statement."""
    index = articles
    row = EncoderRow.objects.get(state="active")
    _, per_index = parse_filters(filters, [index])
    filter_sql = object_ids_sql(index, per_index[index.label])
    args = (row.pk, row.dim, index.content_type.pk)
    with override_settings(CATALOG_SEARCH={"MODEL": encoder.name, "EXACT_SEARCH_MAX_ROWS": 100}):
        for query in ("warm wool scarf", "modern lamp"):
            qvec = encoder.encode_texts([query])[0]
            for weight in (1.0, 0.85):
                full = vector.search(
                    qvec,
                    encoder_id=args[0],
                    dim=args[1],
                    content_type_id=args[2],
                    weights={"text": weight},
                    restriction=filter_sql,
                    limit=25,
                )
                with CaptureQueriesContext(connection) as queries:
                    own = vector.search(
                        qvec,
                        encoder_id=args[0],
                        dim=args[1],
                        content_type_id=args[2],
                        weights={"text": weight},
                        restriction=filter_sql,
                        limit=25,
                        all_similarities=False,
                    )
                assert not any("1 - (" in q["sql"] for q in queries.captured_queries)
                assert len(own) == 25
                assert [(h.document_id, h.object_id, h.score, h.similarities) for h in own] == [
                    (h.document_id, h.object_id, h.score, {"text": h.similarities["text"]}) for h in full
                ]


def test_the_filter_count_trusts_only_a_large_row_estimate(articles):
    """count_filtered: when PostgreSQL's estimate is above the cap, "more than cap" without counting;
    otherwise the bounded count, whatever the estimate (an under-estimate must not send a large filter
    down the unbounded exact path). A too-high estimate only sends a filter down the over-fetch path,
    which still answers exactly (test_filter_rejecting_the_neighbourhood_falls_back_to_exact)."""
    index = articles
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Article._meta.db_table}")

    def count(filters: dict, cap: int) -> tuple[int | None, bool]:
        _, per_index = parse_filters(filters, [index])
        with CaptureQueriesContext(connection) as queries:
            n = count_filtered(object_ids_sql(index, per_index[index.label]), cap)
        return n, any("count(*)" in q["sql"] for q in queries.captured_queries)

    broad = {"section": ["common0", "common1", "common2", "common3"]}  # 1,698 of 3,000
    assert Article.objects.filter(section__in=broad["section"]).count() == 1698
    assert count(broad, 1000) == (1001, False)  # estimated ~1,700 > 1,000: not counted
    assert count(broad, 3000) == (1698, True)  # ~1,700 <= 3,000: counted
    assert count({"section": "rare"}, 100) == (30, True)
    assert count({"section": "rare"}, 10) == (11, False)
    assert count_filtered(None, 10) is None


@pytest.fixture
def pictured(make_product, product_index, encoder):
    """Products with a photo and a text: both columns stored."""
    rng = random.Random(3)
    colors = ["red", "blue", "green", "black"]
    for i in range(60):
        make_product(
            " ".join(rng.choices(WORDS, k=3)),
            description=" ".join(rng.choices(WORDS, k=8)),
            category=["bags", "shoes", "accessories"][i % 3],
            color=colors[i % 4],
        )
    report = sync.reindex(product_index, encoder)
    assert report.indexed == 60 and not report.failed
    return product_index


def _weighted_oracle(encoder_id: int, qvec: np.ndarray, object_ids: set[str], weights: dict[str, float]):
    """Brute force in numpy over the stored vectors: (object id, score), best first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT document_id, object_id, image::text, text::text FROM catalog_search_embedding "
            "WHERE encoder_id = %s",
            [encoder_id],
        )
        rows = [r for r in cursor.fetchall() if r[1] in object_ids]
    scored = []
    for doc_id, oid, image, text in rows:
        sims = {c: float(np.array(json.loads(v)) @ qvec) for c, v in (("image", image), ("text", text)) if v}
        total = sum(w for c, w in weights.items() if c in sims)
        scored.append((doc_id, oid, sum(w * sims[c] for c, w in weights.items() if c in sims) / total))
    scored.sort(key=lambda r: (-r[2], r[0]))
    return [(oid, score) for _, oid, score in scored]


@pytest.mark.parametrize("exact_max_rows", [0, 5000], ids=["walk-falls-back", "small-filter"])
def test_two_columns_over_a_filter_rank_by_the_weighted_similarity_in_one_statement(pictured, encoder, exact_max_rows):
    """A text query compared with image and text vectors (TEXT_QUERY_IMAGE_WEIGHT < 1), when the filter
    needs the exact path: one statement ranks the filtered rows by the weighted similarity itself, the
    same ranking and scores as brute force, where each column's own top would only approximate it."""
    from demo_project.shop.models import Product

    index = pictured
    row = EncoderRow.objects.get(state="active")
    weights = {"image": 0.8, "text": 0.2}
    _, per_index = parse_filters({"category": "shoes"}, [index])
    filter_sql = object_ids_sql(index, per_index[index.label])
    shoes = {str(pk) for pk in Product.objects.filter(category="shoes").values_list("pk", flat=True)}
    # A walk of at most 30 of the 60 rows cannot find 20 shoes: the over-fetch falls back to the exact path.
    settings = {"MODEL": encoder.name, "EXACT_SEARCH_MAX_ROWS": exact_max_rows, "FILTERED_ANN_DEPTH": 30}
    with override_settings(CATALOG_SEARCH=settings):
        for query, k in (("red leather", 20), ("warm wool scarf", 20), ("green canvas", 5)):
            qvec = encoder.encode_texts([query])[0]
            with CaptureQueriesContext(connection) as queries:
                hits = vector.search(
                    qvec,
                    encoder_id=row.pk,
                    dim=row.dim,
                    content_type_id=index.content_type.pk,
                    weights=weights,
                    restriction=filter_sql,
                    limit=k,
                )
            oracle = _weighted_oracle(row.pk, qvec, shoes, weights)[:k]
            assert [h.object_id for h in hits] == [oid for oid, _ in oracle]
            assert [h.score for h in hits] == pytest.approx([score for _, score in oracle], abs=1e-5)
            assert all(set(h.similarities) == {"image", "text"} for h in hits)
            exact = [q["sql"] for q in queries.captured_queries if "<=>" in q["sql"] and "DECLARE" not in q["sql"]]
            assert len(exact) == 1, exact
