"""Facet counts equal a direct ORM count over the same matched set."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest
from django.db.models import Count, Q
from django.test import override_settings

import catalog_search
from catalog_search.indexing import sync
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
    sync.reindex(product_index, encoder, batch_size=32)


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
    # The price facet is counted without its own bound (disjunctive facets): every bucket a shopper can pick.
    assert results.facets["price"] == _buckets(Product.objects.filter(_orm_terms("leather"), in_stock=True))
    assert results.total.as_dict() == {"value": expected.count(), "relation": "eq"}


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


@pytest.mark.parametrize("rule", [1, "75%"], ids=["any-term", "minimum-should-match"])
@pytest.mark.parametrize(
    "filters",
    [{}, {"in_stock": "true", "price__lte": "200"}, {"category": ["bags", "hats"]}, {"brand": "Nobody"}],
)
def test_keyword_matches_made_with_the_counts_equal_bm25_alone(catalog, product_index, filters, rule, settings):
    """One statement scores the matches, reads the shop rows and counts them: its keyword hits are
    bm25.search's with the filter inside, and its counts, completed with the vector candidates' by
    candidate_counts, those of the separate facet query, whether or not the postings are restricted to
    the filter as well. Some of the candidates are keyword matches themselves (counted once). Under a
    MINIMUM_SHOULD_MATCH rule the matched set is the documents with that many of the terms (recounted
    here from the stored documents) plus the candidates."""
    from catalog_search.models import Document
    from catalog_search.retrieval import bm25, facets
    from catalog_search.retrieval.filters import filtered_queryset, object_ids_sql
    from catalog_search.retrieval.query import build_query

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "MINIMUM_SHOULD_MATCH": rule}
    query = build_query(q="red leather wool", filters=filters)
    index_filters = query.index_filters[product_index.label]
    filter_sql = object_ids_sql(product_index, index_filters)
    terms = ["red", "leather", "wool"]
    ct = product_index.content_type.pk
    match = bm25.match(ct, terms)
    assert match.required == (1 if rule == 1 else 2)
    matching = {
        oid
        for oid, stored in Document.objects.filter(content_type_id=ct).values_list("object_id", "terms")
        if len(set(stored) & set(terms)) >= match.required
    }
    # Candidates: four products that may match nothing and three keyword matches.
    pool = [str(pk) for pk in Product.objects.order_by("-pk").values_list("pk", flat=True)[:4]]
    pool += sorted(matching - set(pool))[:3]
    documents = dict(Document.objects.filter(content_type_id=ct, object_id__in=pool).values_list("object_id", "id"))
    candidates = [(documents[oid], oid) for oid in pool]
    assert {h.object_id for h in bm25.search(ct, terms, None, 100)} & set(pool), "some candidates match a term"
    alone = bm25.search(ct, terms, filter_sql, 15)
    separate = facets.count(
        query.indexes, query.index_filters, matches={product_index.label: match}, vector_ids={product_index.label: pool}
    )
    for restrict in (None, filter_sql):
        hits, counted = facets.keyword_matches_and_counts(
            product_index, index_filters, match, restriction=restrict, limit=15
        )
        counted += facets.candidate_counts(
            product_index, index_filters, match, restriction=restrict, candidates=candidates
        )
        assert [(h.document_id, h.object_id, round(h.score, 9)) for h in hits] == [
            (h.document_id, h.object_id, round(h.score, 9)) for h in alone
        ]
        combined = facets.count(
            query.indexes,
            query.index_filters,
            matches={product_index.label: match},
            vector_ids={product_index.label: pool},
            done={product_index.label: counted},
        )
        assert combined == separate
    passing = {str(pk) for pk in filtered_queryset(product_index, index_filters).values_list("pk", flat=True)}
    assert sum(f["count"] for f in separate["price"]) == len((matching | set(pool)) & passing)
    if filters.get("brand") == "Nobody":
        assert hits == [] and all(f["count"] == 0 for f in separate["price"])
    else:
        assert len(hits) == min(15, len(matching & passing)) and sum(f["count"] for f in separate["price"]) > len(hits)


def test_keyword_matches_restricted_to_given_objects(catalog, product_index):
    """A composed query restricts the keyword signal to the photo's neighbours: only they are scored and
    counted (with the pool)."""
    from catalog_search.retrieval import bm25, facets
    from catalog_search.retrieval.filters import IdList

    neighbours = [str(pk) for pk in Product.objects.filter(color="red").values_list("pk", flat=True)[:12]]
    restrict = IdList.of(neighbours)
    match = bm25.match(product_index.content_type.pk, ["leather"])
    hits, counted = facets.keyword_matches_and_counts(product_index, [], match, restriction=restrict, limit=100)
    expected = bm25.search(product_index.content_type.pk, ["leather"], restrict, 100)
    assert hits and {h.object_id for h in hits} <= set(neighbours)
    assert [h.object_id for h in hits] == [h.object_id for h in expected]
    colors = dict(next(rows for facet, rows in counted if facet.name == "color"))
    assert colors == {"red": len(hits)}


def test_facets_over_results_count_the_fused_candidates(catalog):
    """FACETS_OVER="results": counts over exactly the results the query can page through (every fused
    candidate), not every keyword match."""
    filters = {"in_stock": "true"}
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 6, "FACETS_OVER": "results"}):
        results = catalog_search.search(q="leather", filters=filters, k=6)
        # The fused candidates: each signal's 6 (k 6 asks for no more).
        lists = [catalog_search.search(q="leather", filters=filters, k=6, mode=m) for m in ("bm25", "vector")]
    everything = Product.objects.filter(pk__in=[hit.id for found in lists for hit in found.results])
    keyword = Product.objects.filter(_orm_terms("leather"), in_stock=True)
    assert 6 < everything.count() <= 12 < keyword.count()
    for field in ("category", "brand", "color"):
        got = Counter({f["value"]: f["count"] for f in results.facets[field]})
        assert got == _value_counts(everything, field), field
    assert results.facets["price"] == _buckets(everything)


def test_an_unknown_facets_over_setting_is_a_system_check_error():
    from django.core import checks

    from catalog_search.checks import check_facets_setting

    assert check_facets_setting() == []
    with override_settings(CATALOG_SEARCH={**_settings(), "FACETS_OVER": "everything"}):
        [error] = check_facets_setting()
    assert error.id == "catalog_search.E005" and error.level == checks.ERROR and "results" in error.hint


@pytest.mark.parametrize("facets_over", ["matches", "results"])
def test_a_to_many_facet_counts_each_matched_object_once_per_value(encoder, facets_over):
    """ArticleIndex facets `section` (single-valued: counted with the keyword matches) and `tags__name`
    (to-many: its own query over the same matched set). Each matched article counts once per tag, and
    the single-valued counts are not multiplied by its tags."""
    from catalog_search import get_index
    from tests.testapp.models import Article, Tag

    rng = random.Random(3)
    tags = [Tag.objects.create(name=name) for name in ("new", "sale", "eco")]
    for i in range(40):
        article = Article.objects.create(
            headline=f"{rng.choice(['wool', 'linen'])} scarf {i}",
            body=rng.choice(["warm", "light", "soft"]),
            section=rng.choice(["fashion", "home"]),
            published=i % 9 != 0,
        )
        article.tags.set(rng.sample(tags, rng.randint(0, 3)))
    sync.reindex(get_index(Article), encoder)
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 5, "FACETS_OVER": facets_over}):
        results = catalog_search.search(q="wool", mode="bm25", models=["testapp.article"], k=5)
        pool = catalog_search.search(q="wool", mode="bm25", models=["testapp.article"], k=5)
    if facets_over == "matches":  # every published article with "wool"
        matched = Article.objects.filter(headline__startswith="wool", published=True)
    else:  # the 5 results
        matched = Article.objects.filter(pk__in=[hit.id for hit in pool.results])
    assert matched.count() >= 5
    tag_counts = Counter(matched.values_list("tags__name", flat=True).exclude(tags__name=None))
    assert Counter({f["value"]: f["count"] for f in results.facets["tags__name"]}) == tag_counts
    assert sum(tag_counts.values()) > matched.count() // 2
    assert Counter({f["value"]: f["count"] for f in results.facets["section"]}) == _value_counts(matched, "section")


def _counts(results, field: str) -> Counter:
    return Counter({f["value"]: f["count"] for f in results.facets[field]})


# Two facets selected at once (color, category) and a filter that is no facet's (in_stock).
SELECTED = {"color": ["red", "blue"], "category": ["bags", "shoes"], "in_stock": "true"}
SELECTED_ORM = {"color__in": ["red", "blue"], "category__in": ["bags", "shoes"], "in_stock": True}


def _without(field: str | None) -> dict:
    return {k: v for k, v in SELECTED_ORM.items() if field is None or not k.startswith(field)}


def test_disjunctive_facets_count_each_facet_without_its_own_filter(catalog):
    """mode=bm25: the matched set is the keyword matches, exactly. Color is counted with the category and
    stock filters but not its own, category with color and stock, brand and price with every filter."""
    results = catalog_search.search(q="leather", mode="bm25", filters=SELECTED, k=5)
    keyword = Product.objects.filter(_orm_terms("leather"))
    assert _counts(results, "color") == _value_counts(keyword.filter(**_without("color")), "color")
    assert _counts(results, "category") == _value_counts(keyword.filter(**_without("category")), "category")
    everything = keyword.filter(**_without(None))
    assert _counts(results, "brand") == _value_counts(everything, "brand")
    assert results.facets["price"] == _buckets(everything)
    assert set(_counts(results, "color")) == set(COLORS) and len(_counts(results, "category")) == 4
    assert results.total.as_dict() == {"value": everything.count(), "relation": "eq"}
    assert {(hit.object.color, hit.object.category) for hit in results} <= {
        (c, k) for c in ("red", "blue") for k in ("bags", "shoes")
    }


def test_disjunctive_facets_can_be_turned_off(catalog, settings):
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "DISJUNCTIVE_FACETS": False}
    results = catalog_search.search(q="leather", mode="bm25", filters=SELECTED, k=5)
    everything = Product.objects.filter(_orm_terms("leather"), **_without(None))
    for field in ("color", "category", "brand"):
        assert _counts(results, field) == _value_counts(everything, field), field


@pytest.mark.parametrize("facets_over", ["matches", "results"])
def test_disjunctive_hybrid_facets_equal_orm_counts(catalog, facets_over):
    """With a candidate pool larger than the catalog the vector signal retrieves every filtered product,
    so each facet's matched set is the catalog under the other facets' filters; in both FACETS_OVER modes."""
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 500, "FACETS_OVER": facets_over}):
        results = catalog_search.search(q="wool", filters=SELECTED)
    for field in ("color", "category"):
        assert _counts(results, field) == _value_counts(Product.objects.filter(**_without(field)), field), field
    everything = Product.objects.filter(**_without(None))
    assert _counts(results, "brand") == _value_counts(everything, "brand")
    assert results.total.value == everything.count()


def test_disjunctive_facets_add_the_vector_candidates_of_each_search_without_its_filter(catalog):
    """A small pool: each facet's matched set is every keyword match, the query's own 5 vector candidates
    and the 5 of the same query without each selected facet's filter, under the other facets' filters."""
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 5}):
        results = catalog_search.search(q="wool", filters=SELECTED, k=5)
        pools = [
            catalog_search.search(q="wool", mode="vector", filters=filters, k=5)
            for filters in (SELECTED, _drop(SELECTED, "color"), _drop(SELECTED, "category"))
        ]
    pool = {hit.id for found in pools for hit in found}
    matched = Product.objects.filter(Q(_orm_terms("wool")) | Q(pk__in=pool))
    for field in ("color", "category"):
        assert _counts(results, field) == _value_counts(matched.filter(**_without(field)), field), field
    assert _counts(results, "brand") == _value_counts(matched.filter(**_without(None)), "brand")
    assert results.total.value == matched.filter(**_without(None)).count()


def test_disjunctive_facets_of_a_photo_search_keep_the_other_colors(catalog):
    """A photo search (vector signal only) filtered to red: the color facet still lists every color."""
    from tests.conftest import png_bytes

    photo = png_bytes((220, 30, 30))
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 500}):
        results = catalog_search.search(image=photo, filters={"color": "red", "category": ["bags", "hats"]})
    expected = Product.objects.filter(category__in=["bags", "hats"])
    assert _counts(results, "color") == _value_counts(expected, "color")
    assert _counts(results, "category") == _value_counts(Product.objects.filter(color="red"), "category")
    assert {hit.object.color for hit in results} == {"red"}


def _drop(filters: dict, name: str) -> dict:
    return {k: v for k, v in filters.items() if k != name}


@pytest.mark.parametrize("facets_over", ["matches", "results"])
def test_disjunctive_facets_with_a_to_many_facet(encoder, facets_over):
    """Section selected: the section facet (single-valued) lists both sections; the tags (to-many, counted in
    a query of their own) are counted with the section filter, each article once per tag."""
    from catalog_search import get_index
    from tests.testapp.models import Article, Tag

    tags = [Tag.objects.create(name=name) for name in ("new", "sale", "eco")]
    for i in range(24):
        article = Article.objects.create(headline=f"wool scarf {i}", body="warm", section=("fashion", "home")[i % 2])
        article.tags.set(tags[: i % 4])
    sync.reindex(get_index(Article), encoder)
    with override_settings(CATALOG_SEARCH={**_settings(), "CANDIDATES": 100, "FACETS_OVER": facets_over}):
        results = catalog_search.search(q="wool", mode="bm25", models=["testapp.article"], filters={"section": "home"})
    assert _counts(results, "section") == {"fashion": 12, "home": 12}
    home = Article.objects.filter(section="home")
    assert _counts(results, "tags__name") == Counter(home.exclude(tags=None).values_list("tags__name", flat=True))
    assert results.total.value == 12
