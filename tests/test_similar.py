"""Similar products (retrieval/similar.py): the nearest other products by the product's own stored vectors,
filters inside the search, never the product itself; ``GET /api/similar/<type>/<id>/`` and its errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
from django.test import override_settings

import catalog_search
from catalog_search.exceptions import InvalidFilter, InvalidQuery, NotIndexed
from catalog_search.indexing import sync
from catalog_search.models import Document, Embedding, OutboxEntry
from catalog_search.models import Encoder as EncoderRow
from demo_project.shop.models import Product
from tests.conftest import COLORS
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

KINDS = ["tote", "sneaker", "lamp", "scarf", "kettle"]
K = 8


@pytest.fixture
def catalog(make_product, product_index, encoder):
    """90 products, two in three with a photo; categories "rare" (1 in 9) and "common"."""
    rng = random.Random(5)
    for i in range(90):
        color = rng.choice(list(COLORS))
        make_product(
            f"{color} {rng.choice(KINDS)} {rng.choice(['classic', 'light', 'bold'])} {i}",
            category="rare" if i % 9 == 0 else "common",
            color=color,
            image=None if i % 3 == 0 else b"auto",
        )
    sync.reindex(product_index, encoder, batch_size=100)
    return product_index


def _vectors() -> dict[str, tuple[np.ndarray | None, np.ndarray]]:
    row = EncoderRow.objects.get(state="active")
    rows = Embedding.objects.filter(encoder=row, content_type__model="product").values_list(
        "object_id", "image", "text"
    )
    return {oid: (None if image is None else np.asarray(image), np.asarray(text)) for oid, image, text in rows}


def _oracle(product: Product, *, allowed: set[str], k: int, offset: int = 0) -> list[tuple[int, float]]:
    """Brute force over the stored vectors, as the module docstring says: by image, the photo-less on their
    text cosine minus the mean (text - image) offset of the image lane's top ``limit``; without a photo,
    text with text. The search fetches the neighbourhood (CANDIDATES, or the page and as many stand-ins)
    and one more for the product itself. Returns it ranked, (id, score), without the product."""
    vectors, limit = _vectors(), max(200, offset + 2 * k) + 1
    own_image, own_text = vectors[str(product.pk)]
    candidates = {oid: v for oid, v in vectors.items() if oid in allowed}
    if own_image is None:
        scored = [(oid, float(text @ own_text)) for oid, (_, text) in candidates.items()]
    else:
        photographed = [
            (oid, float(i @ own_image), float(t @ own_image)) for oid, (i, t) in candidates.items() if i is not None
        ]
        top = sorted(photographed, key=lambda r: -r[1])[:limit]
        shift = np.mean([t - i for _, i, t in top]) if top else 0.0
        plain = [(oid, float(t @ own_image) - shift) for oid, (i, t) in candidates.items() if i is None]
        scored = [(oid, i) for oid, i, _ in top] + plain
    ranked = sorted(scored, key=lambda r: -r[1])[:limit]
    return [(int(oid), score) for oid, score in ranked if oid != str(product.pk)]


def _assert_nearest(ids: list[int], product: Product, *, allowed: set[str], k: int = K, offset: int = 0) -> None:
    """``ids`` are the oracle's page: the same scores rank by rank (the tiny test encoder gives some products
    equal vectors, so equal scores may come in either order), distinct, never the product."""
    ranked = _oracle(product, allowed=allowed, k=k, offset=offset)
    scores = dict(ranked)
    expected = [score for _, score in ranked[offset : offset + k]]
    assert len(ids) == len(set(ids)) == len(expected) and product.pk not in ids
    assert set(ids) <= scores.keys() <= allowed_ints(allowed)
    assert np.allclose([scores[i] for i in ids], expected, rtol=0, atol=1e-5), (ids, ranked[offset : offset + k])


def allowed_ints(allowed: set[str]) -> set[int]:
    return {int(oid) for oid in allowed}


def _all() -> set[str]:
    return {str(pk) for pk in Product.objects.values_list("pk", flat=True)}


def test_a_photographed_product_finds_its_nearest_by_image_and_never_itself(catalog):
    product = Product.objects.exclude(image="").order_by("pk")[4]
    results = catalog_search.similar(product, k=K)
    ids = [hit.id for hit in results]
    assert product.pk not in ids and len(ids) == K
    _assert_nearest(ids, product, allowed=_all())
    assert any(not hit.object.image for hit in catalog_search.similar(product, k=40))  # the text lane joins
    assert [hit.ranks["vector"] for hit in results] == list(range(1, K + 1))
    assert all(hit.scores["bm25"] is None for hit in results)
    assert (results.total.value, results.total.relation) == (89, "eq")  # every other product: fewer than 200


def test_a_product_without_a_photo_is_compared_by_its_text_vector(catalog):
    product = Product.objects.filter(image="").order_by("pk")[2]
    ids = [hit.id for hit in catalog_search.similar(product, k=K)]
    _assert_nearest(ids, product, allowed=_all())
    assert product.pk not in ids


@pytest.mark.parametrize("exact_max_rows", [5000, 20])  # a small filter (exact), a large one (over-fetch)
def test_filters_apply_inside_the_nearest_neighbour_search(catalog, encoder, exact_max_rows):
    product = Product.objects.exclude(image="").filter(category="common").order_by("pk")[1]
    settings = {"MODEL": encoder.name, "EXACT_SEARCH_MAX_ROWS": exact_max_rows}
    for filters in ({"category": "rare"}, {"category": "common", "color": ["red", "blue"]}):
        allowed = {str(pk) for pk in Product.objects.filter(**_orm(filters)).values_list("pk", flat=True)}
        with override_settings(CATALOG_SEARCH=settings):
            results = catalog_search.similar(product, k=K, filters=filters)
        _assert_nearest([hit.id for hit in results], product, allowed=allowed)
        assert results.query["filters"] == {key: v if isinstance(v, list) else [v] for key, v in filters.items()}


def _orm(filters: dict) -> dict:
    return {f"{key}__in" if isinstance(v, list) else key: v for key, v in filters.items()}


def test_pages_follow_each_other_and_total_says_when_all_were_found(catalog):
    product = Product.objects.exclude(image="").order_by("pk")[7]
    first = [h.id for h in catalog_search.similar(product, k=K)]
    second = [h.id for h in catalog_search.similar(product, k=K, offset=K)]
    _assert_nearest(second, product, allowed=_all(), offset=K)
    assert not set(first) & set(second)
    rare = catalog_search.similar(product, k=50, filters={"category": "rare"})
    assert len(rare) == 10 and rare.total.value == 10 and rare.total.relation == "eq"  # every rare product
    past = catalog_search.similar(product, k=K, offset=200)
    assert len(past) == 0 and (past.total.value, past.total.relation) == (89, "eq")  # an empty page, no error


def test_facets_count_the_neighbourhood_each_selected_facet_without_its_own_filter(catalog, encoder):
    product = Product.objects.exclude(image="").order_by("pk")[2]
    others = Product.objects.exclude(pk=product.pk)  # 89 products: the whole neighbourhood (CANDIDATES 200)
    results = catalog_search.similar(product, filters={"color": ["red", "blue"], "category": "common"})
    counts = {
        name: {o["value"]: o["count"] for o in options} for name, options in results.facets.items() if name != "price"
    }
    assert counts["color"] == _orm_counts(others.filter(category="common"), "color")  # all colors, not 2
    assert counts["category"] == _orm_counts(others.filter(color__in=["red", "blue"]), "category")
    assert counts["brand"] == _orm_counts(others.filter(color__in=["red", "blue"], category="common"), "brand")
    assert results.total.value == others.filter(color__in=["red", "blue"], category="common").count()
    settings = {"MODEL": encoder.name, "DISJUNCTIVE_FACETS": False}
    with override_settings(CATALOG_SEARCH=settings):
        plain = catalog_search.similar(product, filters={"color": "red"})
    assert {o["value"] for o in plain.facets["color"]} == {"red"}
    with override_settings(CATALOG_SEARCH={"MODEL": encoder.name, "CANDIDATES": 30}):
        near = catalog_search.similar(product, k=5)
    assert (near.total.value, near.total.relation) == (30, "gte")
    assert sum(o["count"] for o in near.facets["color"]) == 30  # the 30 nearest


def test_without_facets_the_same_page_and_no_counts(catalog, client):
    product = Product.objects.exclude(image="").order_by("pk")[6]
    full = catalog_search.similar(product, k=K, filters={"category": "common"})
    bare = catalog_search.similar(product, k=K, filters={"category": "common"}, facets=False)
    assert [h.id for h in bare] == [h.id for h in full] and bare.facets == {}
    assert bare.total == full.total
    body = client.get(f"/api/similar/shop.product/{product.pk}/", {"facets": "0", "category": "common", "k": K}).json()
    assert body["facets"] == {} and [r["id"] for r in body["results"]] == [h.id for h in full]
    response = client.get(f"/api/similar/shop.product/{product.pk}/", {"facets": "maybe"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_parameter")
    response = client.get(f"/api/similar/shop.product/{product.pk}/?facets=0&facets=1")
    assert response.status_code == 400


def _orm_counts(queryset, field: str) -> dict:
    from django.db.models import Count

    return {row[field]: row["n"] for row in queryset.values(field).annotate(n=Count("pk"))}


def test_the_only_product_passing_the_filter_is_itself(catalog, encoder):
    product = Product.objects.filter(category="rare").order_by("pk").first()
    product.category = "unique"
    product.save()
    sync.reindex(catalog, encoder)
    results = catalog_search.similar(product, filters={"category": "unique"})
    assert len(results) == 0 and results.total.value == 0


def test_deleted_products_leave_the_list_and_the_page_stays_full(catalog):
    product = Product.objects.exclude(image="").order_by("pk")[3]
    before = [h.id for h in catalog_search.similar(product, k=K)]
    Product.objects.filter(pk__in=before[:2]).delete()  # the index still holds them until the worker runs
    after = [h.id for h in catalog_search.similar(product, k=K)]
    assert len(after) == K and after[: K - 2] == before[2:]


def test_an_article_index_without_images_and_its_queryset_hook(encoder, client):
    from catalog_search.registry import get_index

    for i, (headline, section) in enumerate([("Red wine guide", "food"), ("Red wine tasting", "food"),
                                             ("Bicycle repair", "sport"), ("Wine cellars", "food")]):  # fmt: skip
        Article.objects.create(headline=headline, body=f"article {i}", section=section)
    sync.reindex(get_index(Article), encoder)
    source = Article.objects.get(headline="Red wine guide")
    results = catalog_search.similar(source, k=3)
    assert source.pk not in [h.id for h in results] and {h.type for h in results} == {"testapp.article"}
    assert [h.id for h in catalog_search.similar(source, filters={"section": "sport"})] == [
        Article.objects.get(section="sport").pk
    ]
    assert client.get(f"/api/similar/testapp.article/{source.pk}/").status_code == 200
    Article.objects.filter(pk=source.pk).update(published=False)  # left out by get_queryset(): never shown
    response = client.get(f"/api/similar/testapp.article/{source.pk}/")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    hidden = Article.objects.get(headline="Wine cellars")
    Article.objects.filter(pk=hidden.pk).update(published=False)
    assert hidden.pk not in [h.id for h in catalog_search.similar(Article.objects.get(headline="Red wine tasting"))]


def test_not_indexed_yet_says_why(catalog, make_product):
    queued = make_product("brand new lamp")  # saved: its outbox entry waits for the worker
    assert OutboxEntry.objects.filter(object_id=str(queued.pk)).exists()
    with pytest.raises(NotIndexed, match="queued"):
        catalog_search.similar(queued)
    OutboxEntry.objects.filter(object_id=str(queued.pk)).delete()
    Document.objects.create(content_type=catalog.content_type, object_id=str(queued.pk), length=0, error="boom")
    with pytest.raises(NotIndexed, match="failed.*boom"):
        catalog_search.similar(queued)


def test_bad_parameters_are_invalid_queries(catalog):
    product = Product.objects.first()
    for kwargs in ({"k": 0}, {"k": 10_000}, {"offset": -1}, {"k": "many"}):
        with pytest.raises(InvalidQuery):
            catalog_search.similar(product, **kwargs)
    with pytest.raises(InvalidFilter):
        catalog_search.similar(product, filters={"nope": 1})
    with pytest.raises(InvalidQuery):
        catalog_search.similar(Product(title="unsaved"))
    with pytest.raises(InvalidQuery):
        catalog_search.similar("shop.product")


def test_the_api_answers_results_and_json_errors(catalog, client, make_product):
    product = Product.objects.exclude(image="").order_by("pk")[4]
    response = client.get(f"/api/similar/shop.product/{product.pk}/", {"k": K, "category": "common"})
    assert response.status_code == 200, response.content
    body = response.json()
    allowed = {str(pk) for pk in Product.objects.filter(category="common").values_list("pk", flat=True)}
    _assert_nearest([r["id"] for r in body["results"]], product, allowed=allowed)
    assert body["query"] == {
        "similar_to": {"type": "shop.product", "id": product.pk},
        "filters": {"category": ["common"]},
    }
    # Multi-select: the category facet is counted without its own filter (the product itself left out).
    assert body["facets"]["category"] == [{"value": "common", "count": 79}, {"value": "rare", "count": 10}]
    assert body["total"]["value"] == 79
    assert body["total"]["relation"] == "eq"
    assert {"title", "image_url"} <= set(body["results"][0]["fields"])
    queued = make_product("just saved")
    cases = {
        "/api/similar/shop.nothing/1/": (404, "not_found"),
        "/api/similar/shop.product/999999/": (404, "not_found"),
        "/api/similar/shop.product/abc/": (404, "not_found"),
        "/api/similar/shop.product/99999999999999999999999/": (404, "not_found"),
        f"/api/similar/shop.product/{queued.pk}/": (409, "not_indexed"),
        f"/api/similar/shop.product/{product.pk}/?k=0": (400, "invalid_parameter"),
        f"/api/similar/shop.product/{product.pk}/?nope=1": (400, "invalid_filter"),
        f"/api/similar/shop.product/{product.pk}/?q=red": (400, "invalid_parameter"),
        f"/api/similar/shop.product/{product.pk}/?price__lte=cheap": (400, "invalid_filter"),
    }
    for url, (status, code) in cases.items():
        response = client.get(url)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), url
    assert "queued" in client.get(f"/api/similar/shop.product/{queued.pk}/").json()["error"]["message"]
