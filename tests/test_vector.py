"""Filtered vector retrieval: a selective filter still returns k results, identical to exact search."""

from __future__ import annotations

import random

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings

from catalog_search import get_index, indexing
from catalog_search.models import Encoder as EncoderRow
from catalog_search.retrieval import vector
from catalog_search.retrieval.filters import object_ids_sql
from catalog_search.retrieval.query import parse_filters
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
    indexing.reindex(index, encoder, batch_size=500)
    return index


def _exact_top(encoder, index, query_vector: np.ndarray, section: str, k: int) -> list[str]:
    """Brute force in numpy over the stored vectors of the filtered articles: the oracle."""
    rows = list(Article.objects.filter(section=section).order_by("pk"))
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
            hits = vector.search(row.pk, row.dim, index.content_type.pk, qvec, {"text": 1.0}, filter_sql, 10)
            assert len(hits) == 10
            assert [h.object_id for h in hits] == _exact_top(encoder, index, qvec, "rare", 10)
            assert all(Article.objects.get(pk=h.object_id).section == "rare" for h in hits)


def test_unfiltered_search_uses_the_hnsw_index(articles, encoder):
    row = EncoderRow.objects.get(state="active")
    qvec = indexing.vector_literal(encoder.encode_texts(["wool"])[0])
    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN SELECT document_id FROM catalog_search_embedding e WHERE e.encoder_id = {row.pk} "
            f"AND e.text IS NOT NULL ORDER BY e.text::vector({row.dim}) <=> %s::vector({row.dim}) LIMIT 10",
            [qvec],
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert indexing.vector_index_name(row, "text") in plan, plan
