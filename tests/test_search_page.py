"""The demo shop's search page at ``/`` through Django's test client: no JavaScript involved, so this is
what a browser without scripts gets (text search, filters, facets, pagination, photo form, errors)."""

from __future__ import annotations

import html
import io
import re

import pytest
from django.test import Client, override_settings

import catalog_search
from catalog_search.exceptions import IndexUnavailable
from catalog_search.indexing import sync
from tests.test_api import GET_CASES, IMAGE_CASES
from tests.test_images import encode, noisy

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(make_product, product_index, encoder):
    items = [
        make_product("Red leather tote", category="bags", brand="Acme", color="red", price="49.00"),
        make_product("Blue canvas tote", category="bags", brand="Umbra", color="blue", price="29.00"),
        make_product("Red running shoes", category="shoes", brand="Acme", color="red", price="89.00", in_stock=False),
        make_product("Black leather boots", category="shoes", brand="Kestrel", color="black", price="129.00"),
        make_product("Green wool scarf", category="accessories", brand="Umbra", color="green", price="19.50"),
    ]
    sync.reindex(product_index, encoder)
    return items


def page(response) -> str:
    return response.content.decode()


def grid(response) -> str:
    """The result grid's HTML (not the <template> the script clones)."""
    return re.search(r'<ol class="grid" id="grid".*?</ol>', page(response), re.S).group(0)


def titles(response) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'<h3 class="card-title">(.*?)</h3>', grid(response))]


def card_categories(response) -> list[str]:
    return re.findall(r'<li class="card" data-id="[^"]*" data-category="([^"]*)"', grid(response))


def facet_counts(response, name: str) -> dict[str, int]:
    pattern = rf'name="{name}" value="([^"]*)"[^>]*>.*?<span class="facet-count"[^>]*>(\d+)</span>'
    return {html.unescape(v): int(n) for v, n in re.findall(pattern, page(response), flags=re.S)}


def alert(response) -> str:
    match = re.search(r'<div class="alert alert-error" id="error" role="alert"\s*>(.*?)</div>', page(response), re.S)
    assert match, "no visible error alert"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def photo(product) -> io.BytesIO:
    with product.image.open("rb") as fh:
        buffer = io.BytesIO(fh.read())
    buffer.name = "customer.png"
    return buffer


def test_page_without_query_shows_hint_and_examples(client, shop):
    response = client.get("/")
    assert response.status_code == 200
    text = page(response)
    assert 'id="hint"' in text and 'id="hint" hidden' not in text
    assert 'href="?q=bags"' in text and 'href="?q=shoes"' in text  # example queries from the catalog
    assert 'name="q"' in text and 'type="file"' in text and 'enctype="multipart/form-data"' in text
    assert "csrfmiddlewaretoken" in text
    assert titles(response) == []
    assert "shop/search.css" in text and "shop/search.js" in text
    assert "Product artwork: Twemoji (CC-BY 4.0), OpenMoji (CC BY-SA 4.0), Noto Color Emoji (OFL)" in text


def test_empty_catalog_hint_and_blank_query(client, db):
    response = client.get("/", {"q": "   "})
    assert response.status_code == 200
    assert "The catalog is empty" in page(response)


def test_text_search_renders_results_on_the_server(client, shop):
    response = client.get("/", {"q": "tote"})
    assert response.status_code == 200
    found = titles(response)
    assert {t for t in found[:2]} == {"Red leather tote", "Blue canvas tote"}  # keyword matches rank first
    text = page(response)
    assert "Results for “tote”" in text and 'value="tote"' in text
    assert "$49.00" in text and "In stock" in text
    assert '<details class="why">' in text and "Keywords (BM25)" in text
    assert re.search(r'<tr data-signal="bm25">.*?<td class="why-score">\d+\.\d{3}</td>', text, re.S)
    # What each signal adds, summing to the fused score (RRF: 1 / (k + rank) each).
    fused = re.search(r"Fused \(rrf\): (\d\.\d{4}) = keywords (\d\.\d{4}) \+ vector (\d\.\d{4})</p>", text)
    assert fused and float(fused[2]) + float(fused[3]) == pytest.approx(float(fused[1]), abs=2e-4)


def test_filters_from_checkbox_params(client, shop):
    response = client.get("/", {"q": "leather", "category": "shoes"})
    assert response.status_code == 200
    assert titles(response)[0] == "Black leather boots"
    assert set(card_categories(response)) == {"shoes"}
    assert re.search(r'name="category" value="shoes" checked', page(response))

    response = client.get("/", {"q": "red", "category": ["shoes", "bags"], "in_stock": "true", "price__lte": "60"})
    assert response.status_code == 200
    assert titles(response) and "Out of stock" not in grid(response)
    assert set(card_categories(response)) <= {"bags", "shoes"}
    assert 'name="in_stock" value="true" checked' in page(response)
    assert 'name="price__lte" value="60"' in page(response)


def test_empty_form_fields_are_ignored(client, shop):
    response = client.get("/", {"q": "tote", "price__gte": "", "price__lte": "", "price__lt": ""})
    assert response.status_code == 200 and titles(response)


def test_facet_counts_match_the_search_api(client, shop):
    response = client.get("/", {"q": "red"})
    expected = catalog_search.search(q="red", k=25).facets
    for name in ("category", "brand", "color"):
        assert facet_counts(response, name) == {str(f["value"]): f["count"] for f in expected[name]}, name
    assert facet_counts(response, "category")  # something to click
    text = page(response)
    for bucket in expected["price"]:
        assert f'<span class="facet-count" aria-label="{bucket["count"]} results">' in text
    assert "Under $25" in text and "$250 and up" in text


def test_price_bucket_links_filter_by_range(client, shop):
    response = client.get("/", {"q": "tote"})
    link = html.unescape(re.search(r'<a href="([^"]*)" data-gte="25" data-lt="50"', page(response)).group(1))
    assert "price__gte=25" in link and "price__lt=50" in link
    response = client.get("/" + link)
    assert response.status_code == 200
    assert sorted(titles(response)) == ["Blue canvas tote", "Red leather tote"]  # $49 and $29
    assert 'aria-current="true" class="active">$25 – $50' in page(response)


def test_selected_values_stay_listed(client, shop):
    response = client.get("/", {"q": "tote", "brand": "Nobody"})
    assert response.status_code == 200
    assert titles(response) == []
    assert facet_counts(response, "brand") == {"Nobody": 0}
    assert "No products match “tote”" in page(response) and "remove the filters" in page(response)


def test_pagination(client, make_product, product_index, encoder):
    for i in range(30):
        make_product(f"Plain mug {i}", category="home", color="white", price=f"{10 + i}.00")
    sync.reindex(product_index, encoder)
    first = client.get("/", {"q": "mug"})
    assert first.status_code == 200 and len(titles(first)) == 24
    text = page(first)
    assert 'rel="next" href="?q=mug&amp;page=2"' in text and 'rel="prev"' not in text
    assert "Showing 1–24" in text
    second = client.get("/", {"q": "mug", "page": "2"})
    assert second.status_code == 200 and len(titles(second)) == 6
    assert not set(titles(first)) & set(titles(second))
    assert 'rel="prev" href="?q=mug"' in page(second) and 'rel="next"' not in page(second)
    assert "Showing 25–30" in page(second)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"q": "tote", "price__gte": "abc"}, "Filter 'price' takes a number, got 'abc'."),
        ({"q": "tote", "size": "M"}, "Unknown filter 'size'"),
        ({"q": "tote", "in_stock": "maybe"}, "in_stock"),
        ({"q": "tote", "page": "abc"}, "Page must be a number between 1 and 42."),
        ({"q": "tote", "page": "0"}, "Page must be a number"),
        ({"q": "tote", "page": "43"}, "Page must be a number"),
        ({"q": "tote\x00"}, "null byte"),
        ({"q": "tote " * 200}, "longer than 512"),
    ],
)
def test_bad_input_is_a_friendly_400(client, shop, params, message):
    response = client.get("/", params)
    assert response.status_code == 400
    assert message in alert(response)
    assert 'id="search-form"' in page(response)  # the page still works: search again from here


def test_bad_filter_offers_the_query_without_filters(client, shop):
    response = client.get("/", {"q": "tote", "price__gte": "abc"})
    assert 'href="?q=tote"' in page(response) and "without filters" in alert(response)


@pytest.mark.parametrize("case, params, status, code", GET_CASES, ids=[c[0] for c in GET_CASES])
def test_api_bad_input_corpus_never_500s_the_page(client, shop, case, params, status, code):
    response = client.get("/", params)
    assert response.status_code in (200, 400), (case, response.status_code)
    if code is None:
        assert response.status_code == 200


def test_unavailable_index_is_a_503_page(client, shop, monkeypatch):
    def broken(**kwargs):
        raise IndexUnavailable("The search index is unavailable: OperationalError")

    monkeypatch.setattr(catalog_search, "search", broken)
    response = client.get("/", {"q": "tote"})
    assert response.status_code == 503
    assert "temporarily unavailable" in alert(response)


def test_wrong_method_is_405(client, shop):
    assert client.put("/", {"q": "tote"}).status_code == 405


def test_photo_post_without_javascript(client, shop):
    response = client.post("/", {"image": photo(shop[1]), "q": "red", "category": "bags"})
    assert response.status_code == 200
    text = page(response)
    assert "Photo search" in text and "refined by “red”" in text
    assert len(titles(response)) == 2 and set(card_categories(response)) == {"bags"}
    assert 'id="refine" name="q" value="red"' in text
    assert 'type="hidden" name="category" value="bags"' in text  # the filter carries to the next photo search


def test_photo_post_with_csrf_token(shop):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/")
    token = browser.cookies["csrftoken"].value
    response = browser.post("/", {"image": photo(shop[0]), "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and len(titles(response)) == 5


def test_photo_post_without_csrf_token_is_rejected(shop):
    response = Client(enforce_csrf_checks=True).post("/", {"image": photo(shop[0])})
    assert response.status_code == 403


def test_photo_post_without_a_photo(client, shop):
    response = client.post("/", {"q": "red"})
    assert response.status_code == 400 and "Choose a photo" in alert(response)


@pytest.mark.parametrize("case, payload, status, code", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_photo_post_bad_images_get_the_api_status(client, shop, case, payload, status, code):
    data = payload()
    if case == "missing-image":
        status = 400
    response = client.post("/", data)
    assert response.status_code == status, (case, response.status_code)
    if status == 200:
        assert titles(response)
    else:
        assert alert(response)


def test_photo_post_over_the_size_limit(client, shop, settings):
    with override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, "MAX_IMAGE_BYTES": 50_000}):
        big = io.BytesIO(encode(noisy(200), "PNG"))
        big.name = "big.png"
        response = client.post("/", {"image": big})
        assert response.status_code == 413 and "limit" in alert(response)
        response = client.generic("POST", "/", b"x" * 200_000, content_type="multipart/form-data; boundary=zzz")
        assert response.status_code == 413
    response = client.generic("POST", "/", b"--", content_type="multipart/form-data")
    assert response.status_code == 400


def test_photo_search_before_anything_is_indexed_is_503(client, make_product):
    product = make_product("Red leather tote")
    response = client.post("/", {"image": photo(product)})
    assert response.status_code == 503
    assert "temporarily unavailable" in alert(response) and "reindex" in alert(response)


@pytest.mark.django_db
def test_tracking_parameters_are_ignored(client):
    response = client.get("/", {"q": "tote", "utm_source": "newsletter", "fbclid": "abc"})
    assert response.status_code == 200
