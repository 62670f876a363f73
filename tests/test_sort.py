"""sort=<declared field>: the matched set in that order, stable pages; totals; the API's sort parameter."""

from __future__ import annotations

import random

import pytest
from django.core import checks
from django.db.models import Q
from django.test import override_settings

import catalog_search
from catalog_search import SearchIndex
from catalog_search.checks import _index_errors
from catalog_search.exceptions import InvalidQuery
from catalog_search.indexing import sync
from catalog_search.registry import get_index
from demo_project.shop.models import Product
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(make_product, product_index, encoder):
    rng = random.Random(11)
    for i in range(40):
        word = rng.choice(["wool", "linen"])
        # Few distinct prices: many ties, which the primary key must order.
        make_product(
            f"{word.title()} {rng.choice(['scarf', 'hat', 'bag'])} {i}",
            description=f"{word} goods",
            category=rng.choice(["bags", "hats"]),
            color=rng.choice(["red", "blue", "green"]),
            price=rng.choice(["10.00", "25.00", "25.00", "40.00", "99.00"]),
        )
    sync.reindex(product_index, encoder, batch_size=32)


def _settings(**changes) -> dict:
    from django.conf import settings

    return {**settings.CATALOG_SEARCH, **changes}


def _pages(k: int, **params) -> list[int]:
    ids: list[int] = []
    for offset in range(0, 60, k):
        ids += [hit.id for hit in catalog_search.search(k=k, offset=offset, models=["shop.product"], **params)]
    return ids


@pytest.mark.parametrize(
    "sort, order", [("price", ("price", "pk")), ("-price", ("-price", "pk")), ("title", ("title", "pk"))]
)
def test_sorted_pages_are_the_matched_set_in_order_never_repeating_or_skipping(catalog, sort, order):
    """mode=bm25: the matched set is every keyword match passing the filters, exactly."""
    expected = Product.objects.filter(Q(title__icontains="wool") | Q(description__icontains="wool"), category="bags")
    expected = [p.pk for p in expected.order_by(*order)]
    assert len(expected) > 7
    got = _pages(7, q="wool", mode="bm25", filters={"category": "bags"}, sort=sort)
    if sort == "title":  # the database's collation orders titles: compare as a set, and that it is stable
        assert sorted(got) == sorted(expected)
        assert got == _pages(5, q="wool", mode="bm25", filters={"category": "bags"}, sort=sort)
    else:
        assert got == expected
    results = catalog_search.search(q="wool", mode="bm25", filters={"category": "bags"}, sort=sort, k=3)
    assert results.total.as_dict() == {"value": len(expected), "relation": "eq"}
    assert results.query["sort"] == sort


def test_a_hybrid_sort_orders_keyword_matches_and_vector_candidates(catalog):
    """Hybrid: the set is the keyword matches plus the vector candidates (here, with a pool larger than the
    catalog, every product), all of it by price."""
    with override_settings(CATALOG_SEARCH=_settings(CANDIDATES=500)):
        got = _pages(9, q="wool", sort="-price")
    assert got == [p.pk for p in Product.objects.order_by("-price", "pk")]


def test_a_sorted_result_keeps_its_relevance_scores_when_it_was_a_candidate(catalog):
    results = catalog_search.search(q="wool", mode="bm25", sort="price", k=50)
    assert results.results and all(hit.scores["bm25"] is not None for hit in results)
    prices = [hit.object.price for hit in results]
    assert prices == sorted(prices)


def test_an_offset_past_the_end_is_an_empty_page(catalog):
    results = catalog_search.search(q="wool", mode="bm25", offset=900, k=10)
    assert results.results == [] and results.total.value > 0
    assert catalog_search.search(q="wool", mode="bm25", offset=900, k=10, sort="price").results == []


def test_sorting_several_models_puts_a_model_without_the_field_last(catalog, encoder):
    for i, rating in enumerate([3, 1, 2]):
        Article.objects.create(headline=f"wool news {i}", body="wool", section="home", rating=rating)
    sync.reindex(get_index(Article), encoder)
    results = catalog_search.search(q="wool", mode="bm25", sort="-rating", k=100)
    types = [hit.type for hit in results]
    assert types[:3] == ["testapp.article"] * 3 and set(types[3:]) == {"shop.product"}
    assert [hit.object.rating for hit in results.results[:3]] == [3, 2, 1]
    products = [hit.id for hit in results if hit.type == "shop.product"]
    assert products == sorted(products)  # no value: by primary key
    by_price = catalog_search.search(q="wool", mode="bm25", sort="price", k=100)
    assert [hit.type for hit in by_price][-3:] == ["testapp.article"] * 3


def test_sorting_by_an_undeclared_field_names_the_sortable_fields(catalog):
    with pytest.raises(
        InvalidQuery, match=r"Cannot sort by 'color'.*relevance, added_at, -added_at, price, -price, rating"
    ) as exc:
        catalog_search.search(q="wool", sort="color")
    assert exc.value.code == "invalid_sort"
    with pytest.raises(InvalidQuery, match="Sort by: relevance, added_at, -added_at, price, -price, title, -title[.]$"):
        catalog_search.search(q="wool", sort="rating", models=["shop.product"])
    assert catalog_search.search(q="wool", sort="relevance").query.get("sort") is None


def test_api_sort_and_total(catalog, client):
    body = client.get("/api/search/", {"q": "wool", "mode": "bm25", "sort": "price", "k": 4}).json()
    prices = [float(r["fields"]["price"]) for r in body["results"]]
    assert prices == sorted(prices) and body["total"]["relation"] == "eq" and body["total"]["value"] >= 4
    bad = client.get("/api/search/", {"q": "wool", "sort": "-color"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_sort"
    assert "price" in bad.json()["error"]["message"]
    assert client.get("/api/search/", {"q": "wool", "sort": ["price", "title"]}).status_code == 400
    empty = client.get("/api/search/", {"q": "wool", "offset": 1000}).json()
    assert empty["results"] == [] and empty["total"]["value"] > 0


def test_a_sort_field_the_model_lacks_or_through_a_to_many_relation_is_a_system_check_error():
    class BrokenIndex(SearchIndex):
        model = Article
        text_fields = ["headline"]
        sort_fields = ["rating", "nope", "tags__name", "-rating"]

    messages = [m for m in _index_errors(BrokenIndex())]
    assert all(m.id == "catalog_search.E003" and m.level == checks.ERROR for m in messages)
    text = " | ".join(m.msg for m in messages)
    assert "sort field 'nope'" in text and "'tags__name' crosses a to-many" in text and "'-rating'" in text
    assert "'rating'" not in text.replace("'-rating'", "")


def test_newest_first_on_the_demo_shops_date_field(make_product, product_index, encoder, client):
    """sort=-added_at (the page's "Newest"): a DateTimeField sort, ties by primary key."""
    import datetime as dt

    base = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    days = [5, 40, 5, 12, 300, 1]
    products = [make_product(f"Canvas tote {i}", category="bags") for i in range(len(days))]
    for product, day in zip(products, days, strict=True):
        Product.objects.filter(pk=product.pk).update(added_at=base + dt.timedelta(days=day))
    sync.reindex(product_index, encoder)
    expected = [p.pk for p in Product.objects.order_by("-added_at", "pk")]
    assert [h.id for h in catalog_search.search(q="tote", sort="-added_at", mode="bm25")] == expected
    response = client.get("/", {"q": "tote", "sort": "-added_at"})
    assert '<option value="-added_at" selected>Newest</option>' in response.content.decode()
