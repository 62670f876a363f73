"""End-to-end search over the real embedded PostgreSQL + pgvector with the tiny CLIP encoder."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import catalog_search
from catalog_search import conf
from catalog_search.exceptions import InvalidFilter, InvalidQuery
from catalog_search.indexing import documents, sync
from demo_project.shop.models import Product
from tests.conftest import COLORS, png_bytes
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(make_product, product_index, encoder):
    items = [
        make_product(
            "Red leather tote bag", description="A roomy tote for work", category="bags", color="red", price="49.00"
        ),
        make_product(
            "Blue canvas tote bag", description="Light canvas tote", category="bags", color="blue", price="29.00"
        ),
        make_product(
            "Red running shoes",
            description="Breathable mesh sneakers",
            category="shoes",
            color="red",
            price="89.00",
            in_stock=False,
        ),
        make_product(
            "Black leather boots",
            description="Waterproof leather boots",
            category="shoes",
            color="black",
            brand="Stride",
            price="129.00",
        ),
        make_product(
            "Green wool scarf",
            description="Warm scarf for winter",
            category="accessories",
            color="green",
            price="19.50",
        ),
    ]
    report = sync.reindex(product_index, encoder)
    assert report.indexed == len(items) and not report.failed
    return {p.title: p for p in items}


def titles(results) -> list[str]:
    return [hit.object.title for hit in results]


def test_bm25_ranks_title_matches_and_returns_contract_fields(catalog):
    results = catalog_search.search(q="leather tote", mode="bm25")
    assert titles(results)[0] == "Red leather tote bag"  # both terms, in the weighted title
    assert set(titles(results)) == {"Red leather tote bag", "Blue canvas tote bag", "Black leather boots"}
    top = results.results[0]
    assert top.type == "shop.product" and top.id == catalog["Red leather tote bag"].pk
    assert top.scores["bm25"] > 0 and top.ranks["bm25"] == 1 and top.scores["vector"] is None
    assert top.fields["price"] == "49.00" and top.fields["category"] == "bags"
    assert top.fields["image_url"].startswith("/media/products/")


def test_title_weight_beats_description(catalog):
    # "tote" is in both titles and descriptions of the two bags; "leather" is in the red bag's title
    # and in the boots' title and description: the title weight decides.
    results = catalog_search.search(q="waterproof", mode="bm25")
    assert titles(results) == ["Black leather boots"]


def test_hybrid_fuses_both_signals_with_rrf(catalog):
    results = catalog_search.search(q="red tote", k=5)
    assert len(results) == 5  # the vector signal retrieves every product with an image
    first = results.results[0]
    assert first.object.title == "Red leather tote bag"
    assert first.ranks["bm25"] == 1 and first.ranks["vector"] is not None
    rrf_k = conf.settings().RRF_K
    expected = 1 / (rrf_k + first.ranks["bm25"]) + 1 / (rrf_k + first.ranks["vector"])
    assert first.score == pytest.approx(expected)
    assert results.query == {
        "q": "red tote",
        "mode": "hybrid",
        "fusion": "rrf",
        "filters": {},
        "understood": {"color": ["red"]},
        "understanding": [
            {"field": "color", "lookup": "exact", "value": "red", "words": "red", "source": "value", "applied": "boost"}
        ],
    }


def test_weighted_fusion_alpha_extremes_follow_one_signal(catalog):
    only_bm25 = catalog_search.search(q="leather", fusion="weighted", alpha=0.0)
    assert titles(only_bm25)[:2] == titles(catalog_search.search(q="leather", mode="bm25"))
    only_vector = catalog_search.search(q="leather", fusion="weighted", alpha=1.0)
    assert titles(only_vector) == titles(catalog_search.search(q="leather", mode="vector"))


def test_default_fusion_setting_applies_when_the_query_names_none(catalog, settings):
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "DEFAULT_FUSION": "weighted", "DEFAULT_ALPHA": 0.4}
    default = catalog_search.search(q="red tote", k=5)
    assert default.query["fusion"] == "weighted" and default.query["alpha"] == 0.4
    explicit = catalog_search.search(q="red tote", k=5, fusion="weighted", alpha=0.4)
    assert [(h.id, h.score) for h in default] == [(h.id, h.score) for h in explicit]
    # Scores of weighted fusion (alpha 0.4), not RRF: a named fusion still wins over the setting.
    assert default.results[0].score != catalog_search.search(q="red tote", k=5, fusion="rrf").results[0].score
    assert catalog_search.search(q="red tote", fusion="rrf").query["fusion"] == "rrf"


def test_filters_exact_or_range_boolean(catalog):
    def search(**filters):
        return set(titles(catalog_search.search(q="bag shoes boots scarf", filters=filters, k=50)))

    assert search(category=["shoes", "accessories"]) == {"Red running shoes", "Black leather boots", "Green wool scarf"}
    assert search(price__gte="29", price__lte=90) == {
        "Blue canvas tote bag",
        "Red leather tote bag",
        "Red running shoes",
    }
    assert search(in_stock="false") == {"Red running shoes"}
    assert search(category="shoes", in_stock=True) == {"Black leather boots"}


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_a_small_filter_is_read_once_and_enters_every_statement_as_its_ids(catalog, mode, settings):
    """Read once (its count and its ids in one statement), then tested as ``object_id = ANY(<ids>)``,
    never as an ``object_id IN (<subquery>)`` the planner could turn into a nested loop over the postings
    (filters.member). (Facet counts still apply the filter to the shop rows they read.) With disjunctive
    facets the keyword statement scores the matches of other categories too, for the category facet."""
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "DISJUNCTIVE_FACETS": False}
    with CaptureQueriesContext(connection) as queries:
        results = catalog_search.search(q="leather boots", filters={"category": "shoes"}, mode=mode, k=10)
    assert titles(results)[0] == "Black leather boots"
    assert set(titles(results)) <= {"Black leather boots", "Red running shoes"}
    executed = [q["sql"] for q in queries.captured_queries]
    subquery = 'SELECT ("shop_product"."id")::text'  # the filter's own SQL (filters.object_ids_sql)
    assert [sql.startswith("EXPLAIN") for sql in executed if subquery in sql] == [True, False], executed
    restricted = [sql for sql in executed if "p.object_id = ANY(" in sql or "e.object_id = ANY(" in sql]
    assert restricted, executed


def test_unknown_or_malformed_filters_raise_clear_errors(catalog):
    with pytest.raises(InvalidFilter, match="Unknown filter 'size'"):
        catalog_search.search(q="bag", filters={"size": "M"})
    with pytest.raises(InvalidFilter, match="takes a number"):
        catalog_search.search(q="bag", filters={"price__gte": "abc"})
    with pytest.raises(InvalidFilter, match="takes a number"):
        catalog_search.search(q="bag", filters={"price__lte": "NaN"})
    with pytest.raises(InvalidFilter, match="true or false"):
        catalog_search.search(q="bag", filters={"in_stock": "maybe"})
    with pytest.raises(InvalidFilter, match="does not support '__gte'"):
        catalog_search.search(q="bag", filters={"category__gte": "a"})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "Send a text query"),
        ({"q": "   "}, "Send a text query"),
        ({"q": "bag", "k": 0}, "'k' must be between 1 and 100"),
        ({"q": "bag", "k": 1000}, "'k' must be between 1 and 100"),
        ({"q": "bag", "k": "ten"}, "'k' must be an integer"),
        ({"q": "bag", "offset": -1}, "'offset' must be between 0 and 1000"),
        ({"q": "bag", "mode": "magic"}, "'mode' must be one of"),
        ({"q": "bag", "fusion": "max"}, "'fusion' must be one of"),
        ({"q": "bag", "alpha": 2}, "'alpha' must be a number between 0 and 1"),
        ({"q": "x" * 513}, "longer than 512"),
        ({"q": "bag\x00"}, "null byte"),
        ({"image": png_bytes((1, 2, 3)), "mode": "bm25"}, "mode=bm25 needs a text query"),
        ({"q": "bag", "models": ["shop.nothing"]}, "not registered"),
    ],
)
def test_bad_parameters_raise_invalid_query(catalog, kwargs, message):
    with pytest.raises(InvalidQuery, match=message):
        catalog_search.search(**kwargs)


def test_pagination_is_consistent(catalog):
    full = titles(catalog_search.search(q="red tote", k=5))
    pages = (
        titles(catalog_search.search(q="red tote", k=2))
        + titles(catalog_search.search(q="red tote", k=2, offset=2))
        + titles(catalog_search.search(q="red tote", k=2, offset=4))
    )
    assert pages == full


def test_photo_query_finds_the_same_picture_first(catalog):
    product = catalog["Blue canvas tote bag"]
    with product.image.open("rb") as fh:
        photo = fh.read()
    results = catalog_search.search(image=photo)
    assert results.results[0].object == product
    assert results.results[0].scores["vector"] == pytest.approx(1.0, abs=1e-4)
    assert results.results[0].scores["bm25"] is None


def test_composed_query_refinement_moves_results_toward_the_text(catalog):
    product = catalog["Blue canvas tote bag"]
    with product.image.open("rb") as fh:
        photo = fh.read()
    plain = titles(catalog_search.search(image=photo, k=5))
    refined = catalog_search.search(image=photo, q="red", k=5)
    # "red" retrieves the red products by keyword and pulls the query vector toward "red":
    # both red products now rank above every non-red product except the photographed one.
    red = {"Red leather tote bag", "Red running shoes"}
    ranked = titles(refined)
    assert plain[0] == "Blue canvas tote bag"
    assert set(ranked[:2]) == red, ranked
    assert all(hit.scores["vector"] is not None for hit in refined)
    assert refined.results[0].scores["bm25"] is not None


def test_composed_query_keywords_rank_only_the_photos_neighbourhood(catalog, make_product, product_index, encoder):
    """Photo + "crimson": a crimson product far from the photo is not fused in; those near it are,
    nearest to the photo first. The keyword signal's own words, so understanding is off: on, "crimson"
    names the color red, and the photo's nearest red products join too (tests/test_understanding.py)."""
    from django.conf import settings

    for i, color in enumerate(["yellow", "white", "green", "black", "blue", "red"]):
        make_product(f"Plain item {i}", category="home", color=color)
    sync.reindex(product_index, encoder)
    with catalog["Blue canvas tote bag"].image.open("rb") as fh:
        photo = fh.read()
    small_pool = override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, "CANDIDATES": 5})
    with small_pool:
        alone = catalog_search.search(image=photo, k=11)  # the photo's neighbours, nearest first
        composed_pool = {
            hit.id for hit in catalog_search.search(image=photo, q="crimson", mode="vector", k=5, understand=False)
        }
    nearest = [hit.object for hit in alone]
    near, nearer_text = nearest[1], nearest[2]  # among the photo's 5 nearest products
    far = next(p for p in nearest[5:] if p.pk not in composed_pool)  # in neither vector candidate list
    for product, words in ((near, "Crimson"), (nearer_text, "Crimson crimson"), (far, "Crimson crimson")):
        product.title = f"{words} {product.title}"  # the photo vectors stay the same, the keywords change
        product.save()
    sync.index_instances(product_index, [near, nearer_text, far], encoder)
    with small_pool:
        results = catalog_search.search(image=photo, q="crimson", k=5, explain=True, understand=False)
    by_id = {hit.id: hit for hit in results}
    assert far.pk not in by_id, titles(results)
    # The keyword signal lists the neighbours matching "crimson", nearest to the photo first, whatever
    # their BM25 scores (which the explanation still gives).
    assert {hit.id for hit in results if hit.ranks["bm25"] is not None} == {near.pk, nearer_text.pk}
    assert by_id[near.pk].ranks["bm25"] == 1 and by_id[nearer_text.pk].ranks["bm25"] == 2
    assert by_id[nearer_text.pk].scores["bm25"] > by_id[near.pk].scores["bm25"]
    assert all(hit.explain["bm25_scope"] == "photo_neighbours" for hit in results)
    assert by_id[near.pk].explain["photo_similarity"] == pytest.approx(alone.results[1].scores["vector"])
    assert sum(by_id[near.pk].explain["bm25_terms"].values()) == pytest.approx(by_id[near.pk].scores["bm25"])
    # Facets count the matched set: the vector candidates plus the keyword matches among the neighbours.
    assert sum(f["count"] for f in results.facets["category"]) == len(composed_pool | {near.pk, nearer_text.pk})
    # A text-only query still finds all three by keyword, by BM25 score.
    text = catalog_search.search(q="crimson", k=12, explain=True)
    assert {hit.id for hit in text if hit.ranks["bm25"]} == {near.pk, nearer_text.pk, far.pk}
    assert all("bm25_scope" not in hit.explain for hit in text)


def test_explain_gives_per_signal_detail(catalog):
    results = catalog_search.search(q="leather boots", explain=True)
    top = results.results[0]
    assert top.object.title == "Black leather boots"
    assert set(top.explain["bm25_terms"]) == {"leather", "boot"}
    assert sum(top.explain["bm25_terms"].values()) == pytest.approx(top.scores["bm25"])
    assert top.explain["contributions"]["bm25"] == pytest.approx(1 / (conf.settings().RRF_K + 1))
    assert "image" in top.explain["vector_similarities"]
    assert catalog_search.search(q="leather").results[0].explain is None


def test_instances_resolved_in_a_constant_number_of_queries(make_product, product_index, encoder):
    for i in range(40):
        make_product(f"Canvas bag number {i}", color=list(COLORS)[i % len(COLORS)])
    sync.reindex(product_index, encoder)
    catalog_search.search(q="canvas bag")  # loads this process's copy of the query fields' values
    counts = []
    for k in (1, 10, 40):
        with CaptureQueriesContext(connection) as ctx:
            results = catalog_search.search(q="canvas bag", k=k)
            for hit in results:
                assert hit.object.title and hit.fields["title"]
        assert len(results) == k
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1] == counts[2], counts


def test_reindexing_one_product_is_incremental(catalog, product_index, encoder):
    bag = catalog["Green wool scarf"]
    bag.title = "Green silk scarf"
    bag.save()
    sync.index_instances(product_index, [bag], encoder)
    assert titles(catalog_search.search(q="silk", mode="bm25")) == ["Green silk scarf"]
    assert titles(catalog_search.search(q="wool", mode="bm25")) == []


def test_removed_objects_disappear(catalog, product_index):
    shoes = catalog["Red running shoes"]
    assert documents.remove_objects(product_index, [shoes.pk]) == 1
    assert "Red running shoes" not in titles(catalog_search.search(q="red shoes", k=10))


def test_unreadable_image_is_recorded_and_text_still_indexed(make_product, product_index, encoder):
    make_product("Broken picture lamp", image=b"this is not a png at all")
    make_product("Fine picture lamp")
    report = sync.reindex(product_index, encoder)
    assert report.indexed == 2
    [(object_id, reason)] = report.failed.items()
    assert Product.objects.get(pk=object_id).title == "Broken picture lamp"
    assert "not an image" in reason
    assert set(titles(catalog_search.search(q="lamp", mode="bm25"))) == {"Broken picture lamp", "Fine picture lamp"}


def test_second_model_without_images_and_queryset_hook(catalog, encoder):
    index = catalog_search.get_index(Article)
    Article.objects.create(
        headline="Caring for leather bags", body="Oil the leather twice a year", section="guides", rating=5
    )
    Article.objects.create(
        headline="Leather draft", body="unpublished leather notes", section="guides", published=False
    )
    Article.objects.create(headline="Winter news", body="Scarves are back", section="news", rating=3)
    sync.reindex(index, encoder)
    results = catalog_search.search(q="leather", models=["testapp.article"], mode="bm25")
    assert titles_or_headlines(results) == ["Caring for leather bags"]
    # The vector signal compares the query with article text embeddings (no images); the queryset
    # hook keeps the unpublished draft out of every mode.
    for mode in ("hybrid", "vector"):
        found = titles_or_headlines(catalog_search.search(q="leather", models=["testapp.article"], mode=mode))
        assert set(found) == {"Caring for leather bags", "Winter news"}
    both = catalog_search.search(q="leather", k=20)
    assert {hit.type for hit in both} == {"shop.product", "testapp.article"}
    assert results.results[0].fields == {"headline": "Caring for leather bags", "section": "guides", "rating": 5}
    # A filter only Article declares leaves products out; an integer range filter is validated.
    rated = catalog_search.search(q="leather winter", filters={"rating__gte": 4}, mode="bm25")
    assert titles_or_headlines(rated) == ["Caring for leather bags"]
    with pytest.raises(InvalidFilter, match="takes an integer"):
        catalog_search.search(q="leather", filters={"rating__gte": "4.5"})


def titles_or_headlines(results) -> list[str]:
    return [getattr(hit.object, "title", None) or hit.object.headline for hit in results]


def test_deleted_object_disappears_at_once_before_any_worker(catalog):
    from catalog_search.models import Document, OutboxEntry

    shoes = catalog["Red running shoes"]
    pk = shoes.pk
    shoes.delete()
    # The trigger queued the removal; no worker ran, the document is still there...
    assert OutboxEntry.objects.get(object_id=str(pk)).action == "delete"
    assert Document.objects.filter(object_id=str(pk)).exists()
    # ...yet search no longer returns it, and the page is still full.
    results = catalog_search.search(q="red shoes", k=4)
    assert pk not in [hit.id for hit in results] and len(results) == 4


def test_saving_writes_the_outbox_in_the_same_transaction(db, make_product):
    from django.db import transaction

    from catalog_search.models import OutboxEntry

    with transaction.atomic():
        product = make_product("Wool hat")
        entry = OutboxEntry.objects.get(object_id=str(product.pk))
        assert entry.action == "index"
        Product.objects.filter(pk=product.pk).update(price=12)  # bulk update: no signal, still recorded
        # A new version (from the sequence: never one issued before, so greater).
        assert OutboxEntry.objects.get(object_id=str(product.pk)).version > entry.version
        transaction.set_rollback(True)
    assert not OutboxEntry.objects.filter(object_id=str(product.pk)).exists()


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_minimum_should_match_and_its_fallback(catalog, make_product, product_index, encoder, mode):
    """With MINIMUM_SHOULD_MATCH, only products holding enough of the query's terms are keyword matches (the
    results and the facets' matched set); with fewer of them than the page size k, any term matches again,
    on every page alike (the fallback does not depend on the offset)."""
    for i in range(4):
        make_product(f"Leather tote no. {i}", description="Roomy", category="bags", color="brown", price="59.00")
    sync.reindex(product_index, encoder)
    both = {"Red leather tote bag", *(f"Leather tote no. {i}" for i in range(4))}
    either = both | {"Blue canvas tote bag", "Black leather boots"}
    with override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, "MINIMUM_SHOULD_MATCH": "100%"}):
        strict = catalog_search.search(q="leather tote", mode=mode, k=5)
        keyword = {h.object.title for h in strict if h.scores["bm25"] is not None}
        assert keyword == both
        categories = {f["value"]: f["count"] for f in strict.facets["category"]}
        if mode == "bm25":  # the matched set is the five products with both words
            assert categories == {"bags": 5}
        # Page size 6 > 5 full matches: every product with either word is a keyword match, on both pages.
        for offset in (0, 3):
            relaxed = catalog_search.search(q="leather tote", mode="bm25", k=6, offset=offset)
            assert {h.object.title for h in relaxed} <= either
        pages = catalog_search.search(q="leather tote", mode="bm25", k=7)
        assert {h.object.title for h in pages} == either
        assert {f["value"]: f["count"] for f in pages.facets["category"]} == {"bags": 6, "shoes": 1}
        # Three words, one product with all three (fewer than a page of 3): two of three are enough, not one.
        stepped = catalog_search.search(q="red leather tote", mode="bm25", k=3)
        assert len(stepped) == 3 and {h.object.title for h in stepped} <= both
        assert {f["value"]: f["count"] for f in stepped.facets["category"]} == {"bags": 5}
        # A word no product has does not count: "leather tote zebra" still asks for two of two.
        unknown = catalog_search.search(q="leather tote zebra", mode="bm25", k=5)
        assert {h.object.title for h in unknown} == both
    anyterm = catalog_search.search(q="leather tote", mode="bm25", k=5)
    assert len(anyterm) == 5 and {f["value"]: f["count"] for f in anyterm.facets["category"]} == {"bags": 6, "shoes": 1}
