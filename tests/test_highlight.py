"""highlight=1 over the real embedded PostgreSQL: each result's displayed text fields, HTML-escaped, with the
words that match the query's terms (as the indexing analyzer makes them) in <mark>."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

import catalog_search
from catalog_search.analysis import get_analyzer
from catalog_search.encoding.active import active_encoder
from catalog_search.exceptions import InvalidQuery
from catalog_search.indexing import sync, vocabulary
from catalog_search.registry import get_index
from catalog_search.retrieval.highlight import highlighted_fields, mark, query_terms
from tests.conftest import COLORS, png_bytes
from tests.test_api import upload
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script> Tote & Co"


@pytest.fixture(autouse=True)
def no_throttle_state():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shop(make_product, product_index, encoder):
    items = {
        "sneaker": make_product("Trail Sneaker", description="Grippy sneaker", category="shoes", color="green"),
        "sneakers": make_product("Red canvas sneakers", category="shoes", color="red", product_type="sneakers"),
        "tote": make_product("Red leather tote bag", description="A roomy tote", color="red", price="49.00"),
        "script": make_product(SCRIPT, description="<b>bold</b> & more", color="blue"),
        "scarf": make_product("Green wool scarf", description="Warm scarf", category="accessories", color="green"),
    }
    assert not sync.reindex(product_index, encoder).failed
    return items


def by_id(results) -> dict[int, dict[str, str] | None]:
    return {hit.id: hit.highlights for hit in results}


def test_a_stem_match_marks_the_word_as_the_shop_wrote_it(shop):
    results = catalog_search.search(q="sneakers", mode="bm25", highlight=True)
    marked = by_id(results)
    assert marked[shop["sneaker"].pk] == {"title": "Trail <mark>Sneaker</mark>"}
    assert marked[shop["sneakers"].pk] == {"title": "Red canvas <mark>sneakers</mark>"}


def test_a_corrected_typo_marks_the_catalog_word(shop):
    results = catalog_search.search(q="canvas snekers", mode="bm25", highlight=True)
    assert results.query["corrected"]["words"] == {"snekers": "sneakers"}
    marked = by_id(results)
    assert marked[shop["sneakers"].pk] == {"title": "Red <mark>canvas</mark> <mark>sneakers</mark>"}
    assert marked[shop["sneaker"].pk] == {"title": "Trail <mark>Sneaker</mark>"}  # the correction's stem


def test_several_words_each_marked_and_stopwords_never(shop):
    results = catalog_search.search(q="the red LEATHER totes", mode="bm25", highlight=True)
    marked = by_id(results)
    assert marked[shop["tote"].pk] == {"title": "<mark>Red</mark> <mark>leather</mark> <mark>tote</mark> bag"}
    assert marked[shop["sneakers"].pk] == {"title": "<mark>Red</mark> canvas sneakers"}


def test_markup_and_ampersands_are_escaped_around_the_marks(shop):
    results = catalog_search.search(q="tote script", mode="bm25", highlight=True)
    title = by_id(results)[shop["script"].pk]["title"]
    assert title == "&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt; <mark>Tote</mark> &amp; Co"
    assert "<script" not in title


def test_results_that_match_no_term_have_no_marks(shop):
    results = catalog_search.search(q="tote", highlight=True, k=10)  # hybrid: the vector signal finds them all
    marked = by_id(results)
    assert len(marked) == len(shop)
    assert marked[shop["scarf"].pk] == {"title": "Green wool scarf"}
    assert marked[shop["script"].pk] == {"title": "&lt;script&gt;alert(1)&lt;/script&gt; <mark>Tote</mark> &amp; Co"}
    assert all("<mark>" not in marked[shop[name].pk]["title"] for name in ("sneaker", "sneakers", "scarf"))


def test_a_vector_search_marks_the_same_words(shop):
    results = catalog_search.search(q="sneakers", mode="vector", highlight=True)
    assert by_id(results)[shop["sneaker"].pk] == {"title": "Trail <mark>Sneaker</mark>"}


def test_price_phrases_are_not_marked(make_product, product_index, encoder):
    tote = make_product("Tote 50 under the bridge", price="20.00")
    sync.reindex(product_index, encoder)
    results = catalog_search.search(q="tote under 50", mode="bm25", highlight=True)
    assert by_id(results)[tote.pk] == {"title": "<mark>Tote</mark> 50 under the bridge"}


def test_no_highlight_unless_asked(shop):
    assert all(hit.highlights is None for hit in catalog_search.search(q="tote", mode="bm25"))
    assert all(hit.highlights is None for hit in catalog_search.search(q="tote", mode="bm25", highlight="0"))
    data = Client().get("/api/search/", {"q": "tote"}).json()
    assert data["results"] and all("highlight" not in hit for hit in data["results"])


def test_the_api_parameter(shop):
    data = Client().get("/api/search/", {"q": "sneakers", "mode": "bm25", "highlight": "1"}).json()
    shown = {hit["id"]: hit["highlight"] for hit in data["results"]}
    assert shown[shop["sneaker"].pk] == {"title": "Trail <mark>Sneaker</mark>"}
    assert all(set(hit["highlight"]) == {"title"} for hit in data["results"])  # the description is not displayed


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_a_bad_highlight_value_is_a_400(shop, value):
    response = Client().get("/api/search/", {"q": "tote", "highlight": value})
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["error"] == {
        "code": "invalid_parameter",
        "message": f"'highlight' must be 1 or 0, got {value!r}.",
    }
    with pytest.raises(InvalidQuery, match="'highlight' must be 1 or 0"):
        catalog_search.search(q="tote", highlight=value)


def test_a_photo_search_without_words_marks_nothing_and_escapes(shop):
    photo = upload(png_bytes(COLORS["blue"]), highlight="1")
    response = Client().post("/api/search/image/", photo)
    assert response.status_code == 200, response.content[:300]
    shown = {hit["id"]: hit["highlight"] for hit in response.json()["results"]}
    assert len(shown) == len(shop)
    assert shown[shop["script"].pk] == {"title": "&lt;script&gt;alert(1)&lt;/script&gt; Tote &amp; Co"}
    assert not any("<mark>" in h["title"] for h in shown.values())
    refined = Client().post("/api/search/image/", upload(png_bytes(COLORS["blue"]), q="tote", highlight="1"))
    assert {h["id"]: h["highlight"] for h in refined.json()["results"]}[shop["tote"].pk] == {
        "title": "Red leather <mark>tote</mark> bag"
    }


def test_the_fields_are_the_displayed_text_fields(shop, encoder):
    assert highlighted_fields(get_index(Article)) == ["headline"]  # body is indexed, not displayed
    Article.objects.create(headline="Wool & linen news", body="wool wool", section="home")
    sync.reindex(get_index(Article), encoder)
    results = catalog_search.search(q="wool", mode="bm25", highlight=True, models=["testapp.article"])
    assert [hit.highlights for hit in results] == [{"headline": "<mark>Wool</mark> &amp; linen news"}]


def test_words_the_query_expansion_added_are_marked(make_product, product_index, encoder):
    handbag = make_product("Red leather handbag", color="red")
    make_product("Blue canvas tote", color="blue")
    sync.reindex(product_index, encoder)
    from django.conf import settings

    expansion = {"QUERY_EXPANSION": True, "EXPANSION_THRESHOLD": 0.5, "EXPANSION_TERMS": 1, "QUERY_CACHE": None}
    with override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, **expansion}):
        vocabulary.build_vocabulary(*active_encoder())
        results = catalog_search.search(q="ruby", mode="bm25", highlight=True)  # a color name: ruby -> red
    assert results.query["expanded"] == {"ruby": ["red"]}
    assert by_id(results) == {handbag.pk: {"title": "<mark>Red</mark> leather handbag"}}


# The marking itself (no database) ----------------------------------------------------------------------


def terms(text: str) -> frozenset[str]:
    return frozenset(get_analyzer().terms(text))


def test_marks_are_on_the_original_characters_whatever_folding_does():
    # Accents, full-width letters, "ß" -> "ss" and a ligature change lengths when folded: the offsets are
    # the original string's.
    assert mark("Crème brûlée", terms("creme")) == "<mark>Crème</mark> brûlée"
    assert mark("Große ＴＯＴＥ Bag", terms("tote")) == "Große <mark>ＴＯＴＥ</mark> Bag"
    assert mark("Straße ﬁne tote", terms("strasse fine")) == "<mark>Straße</mark> <mark>ﬁne</mark> tote"
    assert mark("½ tote", terms("2")) == "<mark>½</mark> tote"  # folded into 1, 2: the word yields both
    assert mark("O'Neill's \"tote\" <3", terms("tote")) == "O&#x27;Neill&#x27;s &quot;<mark>tote</mark>&quot; &lt;3"


def test_no_terms_is_the_escaped_text():
    assert mark("a < b & c", frozenset()) == "a &lt; b &amp; c"
    assert mark("", terms("tote")) == ""


def test_query_terms_gather_the_text_the_keyword_terms_and_the_expansion():
    assert query_terms("red sneakers", [], {}) == {"red", "sneaker"}
    assert query_terms(None, ["tote"], {"pocketbook": ["handbag", "Purses"]}) == {"tote", "handbag", "purs"}
