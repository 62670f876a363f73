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


def card_titles(response) -> list[str]:
    """The cards' titles as HTML (the query's words in <mark>)."""
    return re.findall(r'<h3 class="card-title">(.*?)</h3>', grid(response))


def titles(response) -> list[str]:
    return [html.unescape(re.sub(r"</?mark>", "", t)) for t in card_titles(response)]


def card_categories(response) -> list[str]:
    return re.findall(r'<li class="card" data-id="[^"]*" data-category="([^"]*)"', grid(response))


def facet_counts(response, name: str) -> dict[str, int]:
    pattern = rf'type="checkbox" name="{name}" value="([^"]*)"[^>]*>.*?<span class="facet-count"[^>]*>(\d+)</span>'
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


def test_titles_show_the_query_words_highlighted_and_escaped(client, shop, make_product, product_index, encoder):
    make_product("<script>alert(1)</script> & leather totes", category="bags", color="red")
    sync.reindex(product_index, encoder)
    response = client.get("/", {"q": "leather tote"})
    shown = card_titles(response)
    assert "<mark>Red</mark> <mark>leather</mark> <mark>tote</mark>" not in shown  # "red" is no query word
    assert "Red <mark>leather</mark> <mark>tote</mark>" in shown and "Green wool scarf" in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <mark>leather</mark> <mark>totes</mark>" in shown
    assert "<script>alert" not in page(response)
    photo_page = client.post("/", {"image": photo(shop[0])})  # no words: nothing marked, still escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; leather totes" in card_titles(photo_page)
    assert not any("<mark>" in t for t in card_titles(photo_page))


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
    # Multi-select facets: the brand facet is counted without its own filter, so the brands that match stay.
    assert facet_counts(response, "brand") == {"Nobody": 0, "Acme": 2, "Umbra": 2, "Kestrel": 1}
    assert facet_counts(response, "category") == {}
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


# ---- what the query was understood as: chips, typo correction, product types ----------------------


@pytest.fixture
def typed_shop(make_product, product_index, encoder, django_capture_on_commit_callbacks):
    """Products with product types, so "tote" (a handbag synonym) and "sneakers" are understood. The
    indexer makes this process forget its copy of the field values on commit, which a test transaction
    never reaches: the callbacks run here, or an earlier test's values would still be in use."""
    items = [
        make_product("Red leather tote", color="red", price="49.00", product_type="handbag"),
        make_product("Blue canvas tote", color="blue", price="29.00", product_type="handbag"),
        make_product("Red suede tote", color="red", price="89.00", product_type="handbag"),
        make_product("Red mesh sneakers", category="shoes", color="red", price="39.00", product_type="sneakers"),
        make_product(
            "Black hiking boots", category="shoes", color="black", price="129.00", product_type="hiking boots"
        ),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        sync.reindex(product_index, encoder)
    return items


CHIP = re.compile(
    r'<a class="chip" href="(?P<url>[^"]*)" data-drop="(?P<drop>[^"]*)" data-applied="(?P<applied>[^"]*)" '
    r'title="(?P<title>[^"]*)" aria-label="(?P<name>[^"]*)">(?P<label>.*?) <span class="chip-x"'
)


def chips(response) -> list[dict[str, str]]:
    """The chips of the visible "Understood:" line, unescaped; [] when the line is hidden."""
    match = re.search(r'<div class="understood" id="understood"\s*(hidden)?>(.*?)</div>', page(response), re.S)
    assert match, "no understood line"
    if match.group(1):
        return []
    return [{k: html.unescape(v) for k, v in m.groupdict().items()} for m in CHIP.finditer(match.group(2))]


def corrected_line(response) -> str | None:
    match = re.search(r'<p class="status corrected" id="corrected"\s*(hidden)?>(.*?)</p>', page(response), re.S)
    assert match, "no correction line"
    return None if match.group(1) else match.group(2)


def test_understood_parts_are_chips(client, typed_shop):
    response = client.get("/", {"q": "crimson tote under 50", "category": "bags"})
    assert response.status_code == 200
    shown = chips(response)
    assert [c["label"] for c in shown] == ["Color: red", "Type: handbag", "Price ≤ 50"]
    assert [c["name"] for c in shown] == ["Remove Color: red", "Remove Type: handbag", "Remove Price ≤ 50"]
    assert [c["drop"] for c in shown] == ["color", "product_type", "price"]
    assert shown[0]["title"] == "from “crimson” · ranks matching products first"
    assert shown[1]["title"] == "from “tote” · ranks matching products first" and shown[1]["applied"] == "boost"
    assert shown[2]["title"] == "from “under 50” · shows only matching products" and shown[2]["applied"] == "filter"
    assert titles(response) == ["Red leather tote", "Blue canvas tote"]  # <= 50, the red one first
    # Each chip's link is this search (words and filters unchanged) leaving its part out.
    assert shown[1]["url"] == "?q=crimson+tote+under+50&category=bags&drop=product_type"


def test_removing_a_chip_searches_again_without_it(client, typed_shop):
    first = chips(client.get("/", {"q": "crimson tote under 50"}))
    response = client.get("/" + first[2]["url"])  # Remove Price ≤ 50
    assert response.status_code == 200
    assert [c["label"] for c in chips(response)] == ["Color: red", "Type: handbag"]
    assert "Red suede tote" in titles(response)  # $89: no longer bounded
    assert 'id="q" name="q" value="crimson tote under 50"' in page(response)  # the words are unchanged
    assert '<input type="hidden" name="drop" value="price">' in page(response)  # the filters form keeps it
    # A second removal adds to the first.
    second = chips(response)[0]
    assert second["url"] == "?q=crimson+tote+under+50&drop=price%2Ccolor"
    response = client.get("/" + second["url"])
    assert [c["label"] for c in chips(response)] == ["Type: handbag"]
    response = client.get("/", {"q": "crimson tote under 50", "drop": "price,color,product_type"})
    assert chips(response) == [] and corrected_line(response) is None


def test_a_price_range_is_one_chip(client, typed_shop):
    response = client.get("/", {"q": "tote between 20 and 40"})
    assert [c["label"] for c in chips(response)] == ["Type: handbag", "Price 20–40"]
    assert chips(response)[1]["title"] == "from “between 20 and 40” · shows only matching products"
    assert titles(response) == ["Blue canvas tote", "Red mesh sneakers"]  # $29 and $39; the handbag first
    assert '<input type="hidden" name="drop" value="">' in page(response)


def test_a_bad_drop_is_a_friendly_400(client, typed_shop):
    response = client.get("/", {"q": "tote", "drop": "size"})
    assert response.status_code == 400 and "'drop' cannot name 'size'" in alert(response)


def test_corrected_typo_says_so_and_offers_the_words_as_typed(client, typed_shop):
    response = client.get("/", {"q": "red snekers"})
    assert response.status_code == 200
    line = corrected_line(response)
    assert line and line.startswith("Showing results for <strong>sneakers</strong> (you typed snekers). ")
    link = re.search(r'<a href="([^"]*)" data-drop="spelling">Search for “red snekers” instead</a>', line)
    assert link and html.unescape(link.group(1)) == "?q=red+snekers&drop=spelling"
    assert titles(response)[0] == "Red mesh sneakers"
    assert [c["label"] for c in chips(response)] == ["Color: red", "Type: sneakers"]

    response = client.get("/" + html.unescape(link.group(1)))
    assert corrected_line(response) is None
    assert [c["label"] for c in chips(response)] == ["Color: red"]  # "snekers" names no product type
    assert 'id="q" name="q" value="red snekers"' in page(response)


def test_user_words_are_escaped(client, typed_shop):
    q = '<script>alert(1)</script> <img src=x onerror="alert(2)"> snekers'
    response = client.get("/", {"q": q})
    assert response.status_code == 200
    text = page(response)
    assert "<script>alert" not in text and "<img src=x" not in text
    assert corrected_line(response) is not None  # the words are shown, escaped, in the correction line
    assert (
        "Search for “&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=&quot;alert(2)&quot;&gt; snekers”"
        in text
    )


def test_product_type_on_cards_and_as_a_facet(client, typed_shop, make_product, product_index, encoder):
    make_product("Plain tote", color="white", price="15.00")  # no product type: not a facet value
    sync.reindex(product_index, encoder)  # the field values are not re-read: nothing understood changes
    response = client.get("/", {"q": "tote"})
    expected = catalog_search.search(q="tote", k=25).facets["product_type"]
    assert {"value": "", "count": 1} in expected
    assert facet_counts(response, "product_type") == {f["value"]: f["count"] for f in expected if f["value"]}
    assert facet_counts(response, "product_type")["handbag"] == 3
    assert "<legend>Type</legend>" in page(response)
    assert '<span class="card-category">bags</span> · <span class="card-type">handbag</span>' in grid(response)
    response = client.get("/", {"q": "tote", "product_type": "handbag"})
    assert sorted(titles(response)) == ["Blue canvas tote", "Red leather tote", "Red suede tote"]


def test_photo_search_shows_chips_and_takes_drop(client, typed_shop):
    response = client.post("/", {"image": photo(typed_shop[1]), "q": "crimson"})
    assert response.status_code == 200
    assert chips(response)[0]["label"] == "Color: red" and chips(response)[0]["title"].startswith("from “crimson”")
    # Without scripts a chip starts a text search of the refinement, as the filters do.
    assert chips(response)[0]["url"] == "?q=crimson&drop=color"
    response = client.post("/", {"image": photo(typed_shop[1]), "q": "crimson", "drop": "color"})
    assert response.status_code == 200 and "Color: red" not in [c["label"] for c in chips(response)]


def test_sort_menu_orders_the_results_and_the_total_is_shown(client, shop):
    response = client.get("/", {"q": "tote", "sort": "-price"})
    assert response.status_code == 200
    prices = [float(p) for p in re.findall(r'<span class="price">\$([\d.]+)</span>', grid(response))]
    assert len(prices) == 5 and prices == sorted(prices, reverse=True)
    text = page(response)
    assert '<option value="-price" selected>Price: high to low</option>' in text
    assert re.search(r'<p class="status total" id="total"\s*>5 results</p>', text)
    # The sort survives a filter change (the menu is a field of the filters form) and the pages.
    assert 'name="sort" form="filters"' in text
    assert client.get("/", {"q": "tote", "sort": "color"}).status_code == 400


def test_ticking_two_colors_shows_both_and_keeps_the_other_colors(client, shop):
    response = client.get("/", {"q": "tote", "color": ["red", "blue"], "in_stock": "true"})
    assert response.status_code == 200
    assert sorted(titles(response)) == ["Blue canvas tote", "Red leather tote"]
    # Colors counted with the stock filter but not their own (every product matches: the vector candidates
    # are the whole little catalog); categories with the colors.
    assert facet_counts(response, "color") == {"red": 1, "blue": 1, "black": 1, "green": 1}
    assert facet_counts(response, "category") == {"bags": 2}
    text = page(response)
    assert 'type="checkbox" name="color" value="red" checked' in text
    assert 'type="checkbox" name="color" value="blue" checked' in text


def test_more_like_this_on_every_card_lists_the_nearest_other_products(client, shop):
    response = client.get("/", {"q": "tote"})
    links = re.findall(r'<a class="more-like" href="\?similar=(\d+)"', grid(response))
    assert len(links) == len(titles(response)) > 0  # one per card
    tote = shop[0]
    response = client.get("/", {"similar": tote.pk})
    assert response.status_code == 200
    expected = [hit.object.title for hit in catalog_search.similar(tote, k=24)]
    assert titles(response) == expected and "Red leather tote" not in expected and len(expected) == 4
    text = page(response)
    assert "More like “Red leather tote”" in text
    assert f'<input type="hidden" name="similar" value="{tote.pk}">' in text  # the filters keep it
    filtered = client.get("/", {"similar": tote.pk, "category": "shoes"})
    assert sorted(titles(filtered)) == ["Black leather boots", "Red running shoes"]
    assert facet_counts(filtered, "category") == {"bags": 1, "shoes": 2, "accessories": 1}  # multi-select


@pytest.mark.parametrize("value, status", [("999999", 404), ("abc", 404), ("1" * 40, 404)])
def test_more_like_a_missing_product_is_a_friendly_error(client, shop, value, status):
    response = client.get("/", {"similar": value})
    assert response.status_code == status
    assert "There is no product" in alert(response)


def test_more_like_a_product_not_indexed_yet_says_so(client, shop, make_product):
    fresh = make_product("Brand new lamp", category="home")
    response = client.get("/", {"similar": fresh.pk})
    assert response.status_code == 409
    assert "queued" in alert(response)
