"""Facet counts equal a direct ORM count over the same matched set."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest
from django.db.models import Count, Q
from django.test import override_settings

import catalog_search
from catalog_search import indexing
from demo_project.shop.models import Product

pytestmark = pytest.mark.django_db

CATEGORIES = ["bags", "shoes", "hats", "lamps"]
BRANDS = ["Acme", "Stride", "Nordlys"]
COLORS = ["red", "blue", "green", "black"]


@pytest.fixture
def catalog(make_product, product_index, encoder):
    rng = random.Random(5)
    for i in range(90):
        category = rng.choice(CATEGORIES)
        color = rng.choice(COLORS)
        word = rng.choice(["canvas", "leather", "wool"])
        make_product(
            f"{color.title()} {word} {category[:-1]} {i}",
            description=f"{word} goods",
            category=category,
            brand=rng.choice(BRANDS),
            color=color,
            price=f"{rng.uniform(5, 300):.2f}",
            in_stock=rng.random() < 0.7,
        )
    indexing.reindex(product_index, encoder, batch_size=32)


def _orm_terms(word: str) -> Q:
    return Q(title__icontains=word) | Q(description__icontains=word)


def _buckets(queryset) -> list[dict]:
    bounds = [0, 25, 50, 100, 250]
    out = []
    for i, low in enumerate(bounds):
        high = bounds[i + 1] if i + 1 < len(bounds) else None
        qs = queryset.filter(price__gte=low) if high is None else queryset.filter(price__gte=low, price__lt=high)
        out.append({"min": low, "max": high, "count": qs.count()})
    return out


def _value_counts(queryset, field: str) -> Counter:
    return Counter({row[field]: row["n"] for row in queryset.values(field).annotate(n=Count("pk"))})


def test_keyword_facets_match_orm_count(catalog):
    results = catalog_search.search(q="leather", mode="bm25", filters={"in_stock": "true", "price__lte": "200"})
    expected = Product.objects.filter(_orm_terms("leather"), in_stock=True, price__lte=Decimal("200"))
    assert expected.count() > 5
    for field in ("category", "brand", "color"):
        got = Counter({f["value"]: f["count"] for f in results.facets[field]})
        assert got == _value_counts(expected, field), field
    assert results.facets["price"] == _buckets(expected)


def test_hybrid_facets_cover_keyword_matches_and_vector_candidates(catalog):
    # With a candidate pool larger than the catalog, the vector signal retrieves every filtered
    # product with an image, so the matched set is the whole filtered catalog.
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 500}):
        results = catalog_search.search(q="wool", filters={"category": ["bags", "shoes"]})
    expected = Product.objects.filter(category__in=["bags", "shoes"])
    assert Counter({f["value"]: f["count"] for f in results.facets["brand"]}) == _value_counts(expected, "brand")
    assert results.facets["price"] == _buckets(expected)
    # With a small pool, the matched set is every keyword match plus the 5 vector candidates.
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 5}):
        small = catalog_search.search(q="wool", filters={"category": ["bags", "shoes"]}, k=5)
        pool = catalog_search.search(q="wool", mode="vector", filters={"category": ["bags", "shoes"]}, k=5)
    keyword = Product.objects.filter(_orm_terms("wool"), category__in=["bags", "shoes"])
    matched = Product.objects.filter(Q(pk__in=keyword) | Q(pk__in=[hit.id for hit in pool]))
    assert len(pool) == 5 and matched.count() > keyword.count()
    assert Counter({f["value"]: f["count"] for f in small.facets["color"]}) == _value_counts(matched, "color")


def _settings() -> dict:
    from django.conf import settings

    return dict(settings.CATALOG_SEARCH)


def test_to_many_facet_paths_are_counted_in_their_own_query():
    """Counted in one GROUPING SETS query, two to-many paths would multiply each other's rows."""
    from django.contrib.auth.models import Permission, User

    from catalog_search.retrieval.facets import _multivalued

    assert _multivalued(User, "groups__name") and _multivalued(User, "user_permissions__codename")
    assert not _multivalued(User, "username") and not _multivalued(User, "is_staff")
    assert not _multivalued(Permission, "content_type__app_label")  # forward foreign key: one value
