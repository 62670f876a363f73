"""Products without a photo keep a vector path for text queries (retrieval/vector.py, the fallback lane):
with TEXT_QUERY_IMAGE_WEIGHT 1.0 they are compared by their text vector, on the image lane's scale, in
every filter path (none, small: exact, large: over-fetch), and equal to a brute-force oracle."""

from __future__ import annotations

import random

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import catalog_search
from catalog_search.indexing import sync, vectors
from catalog_search.models import Embedding
from catalog_search.models import Encoder as EncoderRow
from catalog_search.retrieval import vector
from catalog_search.retrieval.filters import object_ids_sql
from catalog_search.retrieval.query import parse_filters
from catalog_search.sql import vector_literal
from demo_project.shop.models import Product
from tests.conftest import COLORS

pytestmark = pytest.mark.django_db

KINDS = ["tote", "sneaker", "lamp", "scarf", "kettle", "backpack"]


@pytest.fixture
def catalog(make_product, product_index, encoder):
    """240 products, a photo on every eighth; categories split 1/12 ("rare") and 11/12."""
    rng = random.Random(3)
    for i in range(240):
        color = rng.choice(list(COLORS))
        make_product(
            f"{color} {rng.choice(KINDS)} {rng.choice(['classic', 'light', 'bold'])} {i}",
            category="rare" if i % 12 == 0 else "common",
            color=color,
            image=b"auto" if i % 8 == 0 else None,
        )
    sync.reindex(product_index, encoder, batch_size=100)
    return product_index


def _oracle(row, query_vector: np.ndarray, allowed: set[str], k: int) -> list[str]:
    """Brute force over the stored vectors: photographed rows by image cosine, the others by text cosine
    minus the mean (text - image) cosine of the photographed top k."""
    vectors = Embedding.objects.filter(encoder=row).values_list("object_id", "image", "text")
    photographed, plain = [], []
    for oid, image, text in vectors:
        if oid not in allowed:
            continue
        if image is not None:
            photographed.append((oid, float(np.asarray(image) @ query_vector), float(np.asarray(text) @ query_vector)))
        else:
            plain.append((oid, float(np.asarray(text) @ query_vector)))
    top = sorted(photographed, key=lambda r: -r[1])[:k]
    offset = np.mean([t - i for _, i, t in top]) if top else 0.0
    scored = [(oid, i) for oid, i, _ in top] + [(oid, t - offset) for oid, t in plain]
    return [oid for oid, _ in sorted(scored, key=lambda r: -r[1])[:k]]


@pytest.mark.parametrize(
    ("filters", "exact_max_rows", "path"),
    [({}, 5000, "hnsw"), ({"category": "rare"}, 5000, "exact"), ({"category": "common"}, 50, "over-fetch")],
)
def test_products_without_a_photo_are_found_by_text_in_every_filter_path(
    catalog, encoder, filters, exact_max_rows, path
):
    row = EncoderRow.objects.get(state="active")
    _, per_index = parse_filters(filters, [catalog])
    restriction = object_ids_sql(catalog, per_index[catalog.label]) if filters else None
    allowed = {str(pk) for pk in Product.objects.filter(**filters).values_list("pk", flat=True)}
    settings = {"MODEL": encoder.name, "EXACT_SEARCH_MAX_ROWS": exact_max_rows, "FILTERED_ANN_DEPTH": 2000}
    for query in ("red tote", "light kettle", "bold blue sneaker"):
        qvec = encoder.encode_texts([query])[0]
        with override_settings(CATALOG_SEARCH=settings), CaptureQueriesContext(connection) as queries:
            hits = vector.search(
                qvec,
                encoder_id=row.pk,
                dim=row.dim,
                content_type_id=catalog.content_type.pk,
                weights={"image": 1.0, "text": 0.0},
                restriction=restriction,
                limit=15,
                fallback="text",
            )
        statements = " ".join(q["sql"] for q in queries.captured_queries)
        assert ("DECLARE catalog_search_walk" in statements) == (path == "over-fetch")
        assert [h.object_id for h in hits] == _oracle(row, qvec, allowed, 15)
        assert not all(Product.objects.get(pk=h.object_id).image for h in hits)  # before: photographed only


def test_vector_mode_returns_every_filtered_product_with_or_without_a_photo(catalog):
    rare = Product.objects.filter(category="rare")
    assert rare.count() == 20 and sum(bool(p.image) for p in rare) == 10
    results = catalog_search.search(q="red tote", mode="vector", filters={"category": "rare"}, k=50)
    assert sorted(h.id for h in results) == sorted(p.pk for p in rare)  # before: the 10 photographed only
    photo_query = catalog_search.search(image=Product.objects.exclude(image="").first().image.read(), k=50)
    assert all(h.object.image for h in photo_query)  # a photo is compared with photos only


def test_the_fallback_lane_walks_its_own_hnsw_index(catalog, encoder):
    row = EncoderRow.objects.get(state="active")
    qvec = vector_literal(encoder.encode_texts(["red tote"])[0])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_search_embedding")
        # 210 rows are cheaper to sort than to walk; the question is which graph a real catalog's walks:
        # the lane's own, not the text index with the lane's condition as a filter on its walk.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(
            f"EXPLAIN SELECT e.document_id FROM catalog_search_embedding e WHERE e.encoder_id = {row.pk} "
            f"AND e.content_type_id = %s AND {vector.Lane('text', ('image',)).condition()} "
            f"ORDER BY e.text::vector({row.dim}) <=> %s::vector({row.dim}) LIMIT 15",
            [catalog.content_type.pk, qvec],
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert vectors.vector_index_name(row, "textonly") in plan, plan


def test_an_empty_fallback_lane_costs_one_probe(make_product, product_index, encoder):
    """Every product photographed: the lane is empty and only its probe runs, also under a large filter
    (before the probe, that filter sent the empty lane to an exact statement reading all the filter's ids)."""
    for i in range(30):
        make_product(f"red tote {i}")  # each with a photo
    sync.reindex(product_index, encoder)
    # 30 bags: the large-filter path. One vector search: a selected facet's own search without its filter
    # (DISJUNCTIVE_FACETS) would probe the lane once more.
    settings = {"MODEL": encoder.name, "EXACT_SEARCH_MAX_ROWS": 5, "DISJUNCTIVE_FACETS": False}
    with override_settings(CATALOG_SEARCH=settings), CaptureQueriesContext(connection) as queries:
        hits = catalog_search.search(q="red tote", mode="vector", filters={"category": "bags"}, k=5)
    assert len(hits) == 5
    lane = [q["sql"] for q in queries.captured_queries if "e.image IS NULL" in q["sql"]]
    assert len(lane) == 1 and lane[0].startswith("SELECT EXISTS"), lane
