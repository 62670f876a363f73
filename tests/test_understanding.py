"""Query understanding against the real embedded PostgreSQL: what a query names (values, prices, typos),
how it is applied (boosts by tier, hard filters), what the response says, and the value table the
indexing pipeline keeps."""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
import pytest
from django.core import checks
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog_search import QueryField
from catalog_search import values as catalog_values
from catalog_search.checks import check_indexes
from catalog_search.indexing import documents, sync
from catalog_search.indexing import values as value_writer
from catalog_search.models import FieldValue, Spelling
from catalog_search.retrieval import boost, photo_order
from catalog_search.retrieval.engine import search
from catalog_search.retrieval.understanding import prices
from catalog_search.retrieval.understanding.parse import parse
from catalog_search.retrieval.understanding.typos import max_distance
from demo_project.shop.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(make_product, product_index, encoder):
    catalog_values.forget()

    def bag(title, color, price, **kw):
        return make_product(title, product_type="handbag", color=color, price=price, **kw)

    made = {
        "red_tote": bag("Crimson leather tote by Kestrel", "red", "45.00", brand="Kestrel"),
        "blue_tote": bag("Blue canvas tote", "blue", "30.00"),
        "red_car": make_product("Red racing toy car", category="toys", product_type="toy car", price="15.00"),
        "red_keyboard": make_product("Red keyboard", category="electronics", product_type="keyboard", price="89.00"),
        "red_sneakers": make_product(
            "Scarlet running sneakers", category="shoes", product_type="sneakers", price="229.00"
        ),
        "cheap_sneakers": make_product(
            "Red sneakers, canvas", category="shoes", product_type="sneakers", price="39.00"
        ),
        "boots": make_product(
            "Brown leather hiking boots", category="shoes", product_type="hiking boots", color="brown", price="120.00"
        ),
        "backpack": make_product("Green backpack with speaker pocket", product_type="backpack", color="green"),
        "orange_bag": bag("Orange brand shopper", "orange", "25.00", brand="Orange"),
    }
    assert not sync.reindex(product_index, encoder).failed
    catalog_values.forget()
    return {name: str(p.pk) for name, p in made.items()}


def ids(results) -> list[str]:
    return [str(hit.id) for hit in results]


def understood(results) -> dict:
    return results.query["understood"]


# Price phrases -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "bounds", "rest"),
    [
        ("red sneakers under 50", [("lte", "50")], "red sneakers"),
        ("below $50 bag", [("lte", "50")], "bag"),
        ("less than 50 dollars", [("lte", "50")], ""),
        ("up to 50", [("lte", "50")], ""),
        ("50 or less", [("lte", "50")], ""),
        ("over 100", [("gte", "100")], ""),
        ("above 100 shoes", [("gte", "100")], "shoes"),
        ("more than 100", [("gte", "100")], ""),
        ("from 20 to 40", [("gte", "20"), ("lte", "40")], ""),
        ("between 20 and 40", [("gte", "20"), ("lte", "40")], ""),
        ("20-40", [("gte", "20"), ("lte", "40")], ""),
        ("$20-$40 tote", [("gte", "20"), ("lte", "40")], "tote"),
        ("between 50 and 20", [("gte", "20"), ("lte", "50")], ""),  # inverted: swapped
        ("under €19.99", [("lte", "19.99")], ""),
        ("under 1,000", [("lte", "1000")], ""),
        ("tote 30 euros max", [("lte", "30")], "tote"),
    ],
)
def test_price_phrases(q, bounds, rest):
    found, text = prices.find(q)
    assert [(b.lookup, str(b.value)) for b in found] == bounds
    assert text == rest


@pytest.mark.parametrize(
    "q",
    ["under -5", "under 1e309", "9" * 512, "$$$", "123", "sizes 36-42 boots", "2-4 person tent", "under armour"],
)
def test_no_price_where_there_is_none(q):
    assert prices.find(q)[0] == []


def test_a_price_phrase_is_a_hard_filter_by_default(shop):
    results = search("sneakers under 50")
    assert ids(results) and all(Decimal(hit.fields["price"]) <= 50 for hit in results)
    assert ids(results)[0] == shop["cheap_sneakers"]
    assert understood(results)["price__lte"] == 50
    assert shop["red_sneakers"] not in ids(results)  # the $229 pair
    part = next(p for p in results.query["understanding"] if p["field"] == "price")
    assert part == {
        "field": "price",
        "lookup": "lte",
        "value": 50,
        "words": "under 50",
        "source": "price",
        "applied": "filter",
    }


def test_understand_off_and_dropping_the_price(shop):
    for results in (search("sneakers under 50", understand=False), search("sneakers under 50", drop=["price"])):
        assert shop["red_sneakers"] in ids(results)
    assert "understood" not in search("sneakers under 50", understand=False).query


# Values: recognition and application --------------------------------------------------------------


def test_values_boost_by_field_priority(shop):
    """ "crimson tote": red handbags, then handbags in another color, then red products of other types."""
    results = search("crimson tote", explain=True)
    assert understood(results) == {"color": ["red"], "product_type": ["handbag"]}
    order = ids(results)
    handbags = [shop["red_tote"], shop["blue_tote"], shop["orange_bag"]]
    assert order[0] == shop["red_tote"]
    assert set(order[:3]) == set(handbags)
    red_others = [shop[n] for n in ("red_car", "red_keyboard", "red_sneakers", "cheap_sneakers")]
    assert set(order[3:7]) == set(red_others)  # boosted by color, below every handbag
    assert results.results[0].explain["boost"]["matched"] == {"product_type": ["handbag"], "color": ["red"]}
    # Soft: nothing was filtered out, the boots are still found by the vector signal.
    assert shop["boots"] in ids(search("crimson tote", k=20))


def test_hard_values_filter(shop, product_index, monkeypatch):
    results = search("crimson tote", hard=["color"])
    assert ids(results) and {hit.fields["color"] for hit in results} == {"red"}
    results = search("crimson tote", hard=["all"])
    assert ids(results) == [shop["red_tote"]]
    fields = [QueryField("product_type", hard=True), *product_index.understood_fields[1:]]
    monkeypatch.setattr(product_index, "query_fields", fields)
    results = search("crimson tote")
    assert {hit.fields["product_type"] for hit in results} == {"handbag"}
    assert results.query["understanding"][1]["applied"] == "filter"


def test_dropping_a_value_and_understand_off(shop):
    assert "color" not in understood(search("crimson tote", drop=["color"]))
    plain = search("crimson tote", understand=False)
    assert "understood" not in plain.query


def test_longest_match_then_field_priority(shop):
    # "hiking boot" is one value (plural and stem match), not two words.
    assert understood(search("hiking boot"))["product_type"] == ["hiking boots"]
    # "orange" is a brand and a color: color is declared first.
    found = understood(search("orange"))
    assert found.get("color") == ["orange"] and "brand" not in found
    assert understood(search("Kestrel totes")) == {"brand": ["Kestrel"], "product_type": ["handbag"]}


def test_color_names_and_wordnet_name_values(shop):
    assert understood(search("maroon sneakers"))["color"] == ["red"]  # the color survey: maroon is a red
    parts = search("pocketbook").query["understanding"]  # WordNet: a pocketbook is a handbag
    assert [(p["field"], p["value"], p["source"]) for p in parts] == [("product_type", "handbag", "wordnet")]


def test_a_value_nothing_has_is_not_named(shop):
    assert understood(search("purple sneakers")) == {"product_type": ["sneakers"]}


def test_recognised_words_still_count_for_keywords(shop):
    results = search("tote", mode="bm25", understand=True)
    assert {shop["red_tote"], shop["blue_tote"]} <= set(ids(results)[:2])


def test_one_search_looks_its_terms_up_once(shop):
    """Understanding, expansion and the keyword signal's minimum-should-match share one look-up of which
    terms the catalog has (bm25.Presence): one statement for the query's words, not one per stage."""
    with CaptureQueriesContext(connection) as captured:
        results = search("crimson leather tote")
    lookups = [q["sql"] for q in captured.captured_queries if _PRESENCE.search(q["sql"])]
    assert len(lookups) == 1, lookups
    assert ids(results)[0] == shop["red_tote"]


_PRESENCE = re.compile(r"SELECT (DISTINCT )?term(, content_type_id)? FROM catalog_search_termstat")


def test_odd_queries_get_answers(shop, client: Client):
    for q in ["12345", "$$$ €€", "9" * 500, "under 1e309", "between 50 and 20", "красная сумка tote", "ü ß ❤ 赤"]:
        response = client.get("/api/search/", {"q": q})
        assert response.status_code == 200, (q, response.content[:200])


# Typos ----------------------------------------------------------------------------------------------


def test_a_misspelt_word_is_corrected_to_the_nearest_catalog_word(shop):
    results = search("red snekers")
    assert results.query["corrected"] == {"q": "red sneakers", "words": {"snekers": "sneakers"}}
    assert understood(results)["product_type"] == ["sneakers"]
    assert {shop["red_sneakers"], shop["cheap_sneakers"]} == set(ids(results)[:2])
    assert parse("bakcpack", [shop_index()]).corrections == {"bakcpack": "backpack"}  # a transposition is 1


def shop_index():
    from catalog_search.registry import get_index

    return get_index(Product)


def test_known_words_short_words_and_shopping_words_are_never_corrected(shop):
    index = shop_index()
    assert parse("speaker", [index]).corrections == {}  # a catalog word, one edit from "sneaker"
    assert parse("boot", [index]).corrections == {}  # "boot" is indexed (hiking boots)
    assert parse("red cra", [index]).corrections == {}  # 3 letters: too short to guess
    assert parse("cheap backpack", [index]).corrections == {}  # "cheap" is one edit from nothing, but no product
    assert search("red snekers", drop=["spelling"]).query.get("corrected") is None


def test_edit_distance_bounds():
    assert [max_distance(w) for w in ("tee", "tote", "sneaker", "sneakers", "backpacks")] == [0, 1, 1, 2, 2]


def test_distance_two_only_for_long_words(shop):
    index = shop_index()
    assert parse("bakpackk", [index]).corrections == {"bakpackk": "backpack"}  # 8 letters, 2 edits
    assert parse("snkrs", [index]).corrections == {}  # 5 letters, 3 edits


# The value table and spellings ----------------------------------------------------------------------


def test_the_indexer_records_values_and_the_sweep_recounts(shop, make_product, product_index, encoder):
    counts = dict(
        FieldValue.objects.filter(field="product_type").values_list("value", "count"),
    )
    assert counts["handbag"] == 3 and counts["sneakers"] == 2
    new = make_product("Teal teddy bear, plush", category="toys", product_type="teddy bear", color="teal")
    sync.reindex(product_index, encoder, object_ids=[new.pk])
    assert understood(search("teddy bears"))["product_type"] == ["teddy bear"]  # at once, in this process
    Product.objects.filter(pk=new.pk).delete()
    documents.remove_objects(product_index, [new.pk])
    assert FieldValue.objects.filter(value="teddy bear").exists()  # until the sweep recounts
    assert "values" in value_writer.refresh([product_index])
    assert not FieldValue.objects.filter(value="teddy bear").exists()
    assert FieldValue.objects.get(field="product_type", value="handbag").count == 3
    assert "product_type" not in understood(search("teddy bears"))
    assert value_writer.refresh([product_index]) == "current"  # nothing changed: no recount


def test_spellings_are_written_with_documents_and_filled_for_older_indexes(shop, product_index):
    assert Spelling.objects.filter(word="sneakers", term="sneaker").exists()
    Spelling.objects.all().delete()
    assert "spellings" in value_writer.refresh([product_index])
    assert Spelling.objects.filter(word="sneakers").exists()


def test_values_reach_other_processes_within_the_refresh_time(shop, settings):
    catalog_values.catalog_values(shop_index().content_type.pk)  # this process's copy
    FieldValue.objects.create(content_type=shop_index().content_type, field="color", value="mauve", count=1)
    assert "mauve" not in catalog_values.catalog_values(shop_index().content_type.pk).get("color", {})
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "VALUES_REFRESH_SECONDS": 0}
    assert "mauve" in catalog_values.catalog_values(shop_index().content_type.pk)["color"]


# Photo + text -----------------------------------------------------------------------------------------


def test_a_photo_refined_by_a_color(make_product, product_index, encoder):
    catalog_values.forget()
    from tests.conftest import COLORS, png_bytes

    made = {}
    for color in ("red", "blue", "green", "black", "white"):
        made[("handbag", color)] = make_product(f"{color.title()} handbag", product_type="handbag", color=color)
    for color in ("blue", "red"):
        made[("keyboard", color)] = make_product(
            f"{color.title()} keyboard", category="electronics", product_type="keyboard", color=color
        )
    sync.reindex(product_index, encoder)
    catalog_values.forget()
    photo = png_bytes(COLORS["red"], seed=1)
    results = search("in blue", image=photo)
    assert understood(results) == {"color": ["blue"], "product_type": ["handbag"]}
    sources = {p["field"]: p["source"] for p in results.query["understanding"]}
    assert sources == {"color": "value", "product_type": "photo"}
    order = ids(results)
    # The color the words ask for first, the photo's kind (a guess) within it: the blue handbag, then the
    # blue keyboard, then the handbags of other colors.
    assert order[:2] == [str(made[("handbag", "blue")].pk), str(made[("keyboard", "blue")].pk)]
    handbags = {str(p.pk) for (kind, color), p in made.items() if kind == "handbag" and color != "blue"}
    assert set(order[2:6]) == handbags


def _photo_similarity(photo: bytes, encoder, products) -> dict[str, float]:
    """The oracle: each product's stored image vector against the photo alone, in numpy."""
    from catalog_search.encoding.images import open_image
    from catalog_search.models import Embedding

    vector = encoder.encode_images([open_image(photo)])[0]
    rows = Embedding.objects.filter(object_id__in=[str(p.pk) for p in products])
    return {row.object_id: float(np.dot(vector, np.asarray(row.image, dtype=np.float32))) for row in rows}


def test_a_photo_refined_by_words_naming_the_kind_orders_each_tier_by_the_photo_alone(
    make_product, product_index, encoder
):
    # Every tier of "blue lamp" holds what the words asked; what is left is likeness to the photo. The fused
    # score would count the words again (the composed vector leans to "blue"): by it, the blue lamps that
    # look most like the photo are not first.
    from tests.conftest import COLORS, png_bytes

    catalog_values.forget()
    shades = [(220, 30, 30), (200, 60, 40), (30, 60, 220), (60, 60, 200), (240, 210, 30), (20, 20, 20)]
    looks = [(shade, shape) for shade in shades for shape in ("box", "round")]
    made = [
        make_product(f"Lamp {n}", product_type="lamp", color="blue", image=png_bytes(*look, seed=n))
        for n, look in enumerate(looks)
    ]
    others = [
        make_product(f"Red vase {n}", product_type="vase", color="red", image=png_bytes(COLORS["red"], seed=50 + n))
        for n in range(4)
    ]
    sync.reindex(product_index, encoder)
    catalog_values.forget()
    photo = png_bytes(COLORS["red"], seed=1)
    results = search("blue lamp", image=photo, k=len(made), explain=True)
    assert understood(results) == {"color": ["blue"], "product_type": ["lamp"]}
    near = _photo_similarity(photo, encoder, made + others)
    order = ids(results)
    assert set(order) == {str(p.pk) for p in made}  # the blue lamps' tier fills the page
    # Nearest to the photo first (equal images have equal vectors: ties in either order).
    assert all(near[a] >= near[b] - 1e-6 for a, b in zip(order, order[1:], strict=False))
    assert not any("within_tier" in hit.explain for hit in results.results)  # a named kind: no kind prior


def _kind_prior_catalog(make_product, product_index, encoder):
    """A red photo; its nearest neighbours are red handbags, too few (3 of 10, with the blue one) to vote the
    kind; a blue keyboard looks more like the photo than the blue handbag does."""
    from tests.conftest import COLORS, png_bytes

    catalog_values.forget()
    photo = png_bytes(COLORS["red"], seed=1)
    for n in range(2):
        make_product(f"Red handbag {n}", product_type="handbag", color="red", image=photo)
    for n in range(7):
        make_product(f"Red item {n}", category="home", product_type=f"kind {n}", color="red",
                     image=png_bytes(COLORS["green"], "round", seed=10 + n))  # fmt: skip
    keyboard = make_product("Blue keyboard", category="electronics", product_type="keyboard", color="blue",
                            image=png_bytes(COLORS["red"], "round", seed=3))  # fmt: skip
    handbag = make_product("Blue handbag", product_type="handbag", color="blue",
                           image=png_bytes(COLORS["red"], seed=2))  # fmt: skip
    sync.reindex(product_index, encoder)
    catalog_values.forget()
    return photo, keyboard, handbag


def test_a_photo_refined_by_a_color_ranks_the_photos_kind_first_in_the_tier(
    make_product, product_index, encoder, monkeypatch
):
    # "This, but in blue": the nearest blue product to a handbag photo is a keyboard; the photo's
    # neighbourhood says handbag (weighted by nearness, though too few to vote), so the blue handbag leads.
    photo, keyboard, handbag = _kind_prior_catalog(make_product, product_index, encoder)
    near = _photo_similarity(photo, encoder, [keyboard, handbag])
    assert near[str(keyboard.pk)] > near[str(handbag.pk)]  # by the photo alone the keyboard would lead
    monkeypatch.setattr(photo_order, "KIND_TEXT_WEIGHT", 0.0)  # the neighbourhood's share alone
    results = search("in blue", image=photo, k=2)
    assert understood(results) == {"color": ["blue"]}  # no kind voted
    assert ids(results) == [str(handbag.pk), str(keyboard.pk)]
    monkeypatch.setattr(photo_order, "KIND_SHARE_WEIGHT", 0.0)  # and without it, the photo alone
    assert ids(search("in blue", image=photo, k=2)) == [str(keyboard.pk), str(handbag.pk)]


def test_the_kind_prior_is_the_documented_score(make_product, product_index, encoder):
    # Oracle in numpy: 2.0 x cosine(photo, the kind name's text vector) + 0.5 x the kind's share of the
    # photo's neighbourhood, each neighbour weighted exp((similarity - the nearest's) / 0.05).
    from catalog_search.encoding.images import open_image

    photo, keyboard, handbag = _kind_prior_catalog(make_product, product_index, encoder)
    image = encoder.encode_images([open_image(photo)])[0]
    everything = list(Product.objects.all())
    near = _photo_similarity(photo, encoder, everything)
    weight = {oid: np.exp((s - max(near.values())) / 0.05) for oid, s in near.items()}
    kind_of = {str(p.pk): p.product_type for p in everything}
    results = search("in blue", image=photo, k=2, explain=True)
    assert len(results.results) == 2
    for hit in results.results:
        oid = str(hit.id)
        kind = kind_of[oid]
        text = encoder.encode_texts([kind])[0]
        share = sum(w for oid, w in weight.items() if kind_of[oid] == kind) / sum(weight.values())
        expected = 2.0 * float(np.dot(image, text) / np.linalg.norm(text)) + 0.5 * share
        assert hit.explain["within_tier"]["kind_prior"] == pytest.approx(expected, abs=1e-4)
        assert hit.explain["within_tier"]["photo_similarity"] == pytest.approx(near[oid], abs=1e-4)


def test_a_photo_refined_by_words_finds_the_nearest_products_with_the_named_values(
    make_product, product_index, encoder, settings
):
    # The blue handbag looks like the photo (a red picture) but is neither among its few nearest products
    # nor among the composed vector's candidates (as in a large catalog): the photo's nearest blue products
    # are fetched, so it comes first (blue, and of the kind the neighbours vote for), and the facets count it.
    from tests.conftest import COLORS, png_bytes

    # Text weight 0: the composed vector is the photo's, so its candidates are the photo's nearest.
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "CANDIDATES": 6, "COMPOSED_TEXT_WEIGHT": 0.0}
    catalog_values.forget()
    photo = png_bytes(COLORS["red"], seed=1)
    for n in range(12):  # the photo's nearest: they vote its kind and fill the few candidates
        make_product(f"Red handbag {n}", product_type="handbag", color="red", image=photo)
    for n in range(10):  # blue, of kinds nothing votes for, in blue pictures: near the composed vector
        make_product(f"Blue thing {n}", category="home", product_type=f"kind {n}", color="blue",
                     image=png_bytes((30 + 5 * n, 60, 220 - 5 * n), ("box", "round")[n % 2], seed=20 + n))  # fmt: skip
    wanted = make_product("Blue handbag", product_type="handbag", color="blue", image=png_bytes(COLORS["red"], seed=3))
    sync.reindex(product_index, encoder)
    catalog_values.forget()
    seen = {}
    real = boost.rerank

    def spy(search_, ranked):
        seen["vector"] = set(search_.found.vector_ids.get(product_index.label, []))
        seen["neighbours"] = set(search_.found.neighbourhood.get(product_index.label, []))
        return real(search_, ranked)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boost, "rerank", spy)
        results = search("in blue", image=photo, k=5)
    assert understood(results) == {"color": ["blue"], "product_type": ["handbag"]}
    assert str(wanted.pk) not in seen["vector"] | seen["neighbours"]  # what the test is about
    assert ids(results)[0] == str(wanted.pk)
    blue = {str(p.pk) for p in Product.objects.filter(color="blue")}
    assert set(ids(results)) <= blue and not seen["vector"] & blue
    # The blue products matched are the fetched ones (a signal's candidates: CANDIDATES 6), each counted once.
    assert {row["value"]: row["count"] for row in results.facets["color"]}["blue"] == 6


# Declarations and the API -------------------------------------------------------------------------------


def test_checks_reject_query_fields_that_cannot_filter(product_index, monkeypatch):
    monkeypatch.setattr(product_index, "query_fields", [QueryField("title"), QueryField("price")])
    monkeypatch.setattr(product_index, "price_field", "color")
    messages = [m.msg for m in check_indexes() if isinstance(m, checks.Error)]
    assert any("query field 'title' must also be a filter field" in m for m in messages)
    assert any("query field 'price' is a range field" in m for m in messages)
    assert any("price_field 'color' must be a numeric field" in m for m in messages)


def test_api_parameters(shop, client: Client):
    response = client.get("/api/search/", {"q": "crimson tote under 50", "hard": "color"})
    assert response.status_code == 200
    body = response.json()
    assert body["query"]["understood"] == {"color": ["red"], "product_type": ["handbag"], "price__lte": 50}
    assert {r["fields"]["color"] for r in body["results"]} == {"red"}
    for params, word in [({"hard": "title"}, "title"), ({"drop": "nothing"}, "nothing"), ({"understand": "maybe"}, "")]:
        response = client.get("/api/search/", {"q": "tote", **params})
        assert response.status_code == 400 and response.json()["error"]["code"]
        assert word in response.json()["error"]["message"]
    off = client.get("/api/search/", {"q": "crimson tote", "understand": "0"}).json()
    assert "understood" not in off["query"]


def test_a_range_with_a_currency_is_a_price_after_any_word():
    assert [(b.lookup, str(b.value)) for b in prices.find("train set $15-$35")[0]] == [("gte", "15"), ("lte", "35")]
    assert prices.find("train set 15-35")[0] == []  # "set 15-35" without a currency: a count


def test_a_correction_keeps_the_first_letter_on_a_tie(make_product, product_index, encoder):
    make_product("Court shoes in emerald", product_type="high heels")
    for n in range(3):
        make_product(f"Slip out sandals {n}", product_type="sandals")  # "out" is more frequent than "court"
    sync.reindex(product_index, encoder)
    assert parse("cout shoes", [product_index]).corrections == {"cout": "court"}


def test_a_kind_no_word_names_is_voted_by_the_best_results(make_product, product_index, encoder):
    """ "blue joystick": no value or synonym knows "joystick", but the keyword matches are game controllers:
    they come first, before blue products of other kinds."""
    catalog_values.forget()
    for n, color in enumerate(("red", "black", "white", "green", "blue")):
        make_product(f"Joystick game controller {n}", product_type="game controller", color=color)
    blue = [make_product(f"Blue umbrella {n}", product_type="umbrella", color="blue") for n in range(4)]
    sync.reindex(product_index, encoder)
    catalog_values.forget()
    results = search("blue joystick", mode="bm25")
    assert understood(results) == {"color": ["blue"], "product_type": ["game controller"]}
    assert results.query["understanding"][-1]["source"] == "results"
    assert [hit.fields["product_type"] for hit in results][:5] == ["game controller"] * 5
    assert results.results[0].fields["color"] == "blue"
    assert {str(p.pk) for p in blue} <= set(ids(results))  # still found, after the kind
    only_named = search("blue", mode="bm25")  # every word names a value: nothing is voted
    assert understood(only_named) == {"color": ["blue"]}


def test_a_color_name_is_the_nearest_color_the_shop_has(make_product, product_index, encoder):
    catalog_values.forget()
    for color in ("blue", "teal", "brown", "beige", "red"):
        make_product(f"Plain mug {color}", product_type="mug", color=color)
    sync.reindex(product_index, encoder)
    catalog_values.forget()
    named = {word: understood(search(f"{word} mug"))["color"] for word in ("aqua", "sapphire", "khaki", "maroon")}
    assert named == {"aqua": ["teal"], "sapphire": ["blue"], "khaki": ["beige"], "maroon": ["red"]}
