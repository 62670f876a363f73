"""What the re-rank by tier reads from the shop's tables (``boost._matching``, ``candidate_values.read``): one
statement each, the ids as one array parameter, relations followed without repeating rows; and the
candidates' values read with the facet counts instead (``facets.Listed``, ``boost._having``)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog_search.registry import get_index
from catalog_search.retrieval import boost, candidate_values
from tests.testapp.models import Article, Author, Tag

pytestmark = pytest.mark.django_db


def test_matching_returns_only_the_candidates_with_a_wanted_value(make_product, product_index):
    made = [
        make_product(f"Bag {i}", product_type="handbag" if i % 2 else "backpack", color="red" if i % 3 else "blue")
        for i in range(300)
    ]
    wanted = [str(p.pk) for p in made] + ["999999999"]  # an id nothing has is left out
    with CaptureQueriesContext(connection) as queries:
        found = boost._matching(product_index, wanted, {"product_type": {"handbag"}, "color": {"blue"}})
    assert len(queries) == 1
    sql = queries[0]["sql"]
    assert "IN (SELECT unnest(" in sql and sql.count(",") < 50 + len(made)  # not one placeholder per id
    expected = {}
    for i, p in enumerate(made):
        fields = {"product_type"} if i % 2 else set()
        fields |= set() if i % 3 else {"color"}
        if fields:
            expected[str(p.pk)] = fields
    assert found == expected  # backpacks that are red are not returned at all


def test_matching_and_values_follow_relations_without_repeating_rows():
    author = Author.objects.create(name="Ada")
    tagged = Article.objects.create(headline="Tagged", body="", section="news", author=author)
    tagged.tags.set([Tag.objects.create(name="red"), Tag.objects.create(name="wool")])
    bare = Article.objects.create(headline="Bare", body="", section="news")
    index = get_index(Article)
    ids = [str(tagged.pk), str(bare.pk)]
    found = boost._matching(index, ids, {"tags__name": {"red", "silk"}, "author__name": {"Ada"}})
    assert found == {str(tagged.pk): {"tags__name", "author__name"}}
    assert boost._matching(index, ids, {"tags__name": {"silk"}}) == {}
    values = candidate_values.read(index, ids, ["tags__name", "author__name"])
    assert values[str(tagged.pk)] == {"tags__name": {"red", "wool"}, "author__name": {"Ada"}}
    assert values[str(bare.pk)] == {}  # no tag, no author: nothing to vote with


# The candidates' values read with the facet counts -------------------------------------------------

_MATCHING = "OFFSET 0) AS c WHERE"  # boost._matching's statement
COLORS = ("red", "blue", "green")


@pytest.fixture
def totes(make_product, product_index, encoder, settings):
    """30 totes and 10 red keyboards, each signal keeping 5 candidates: the vector signal's include keyword
    matches the keyword signal did not keep (the candidates the facet counts list but do not count)."""
    from catalog_search import values as catalog_values
    from catalog_search.indexing import sync

    made = [
        make_product(f"Tote {i} canvas", product_type="handbag", color=COLORS[i % 3], image=None) for i in range(30)
    ]
    made += [
        make_product(f"Keyboard {i}", category="electronics", product_type="keyboard", color="red", image=None)
        for i in range(10)
    ]
    assert not sync.reindex(product_index, encoder).failed
    catalog_values.forget()
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "CANDIDATES": 5}
    return made


def _search(q: str, **kw):
    from catalog_search.retrieval.engine import search

    return search(q, k=5, explain=True, **kw)


def test_the_rerank_tests_the_values_the_facet_counts_read(totes, product_index):
    """With the facets counted over the matches, the candidates' values come with the counts' statements:
    the re-rank runs no statement of its own, and tiers each candidate as the statement would."""
    with CaptureQueriesContext(connection) as queries:
        results = _search("crimson tote")
    assert results.query["understood"] == {"product_type": ["handbag"], "color": ["red"]}
    assert not [q["sql"] for q in queries.captured_queries if _MATCHING in q["sql"]]
    ids = [str(hit.id) for hit in results]
    by_statement = boost._matching(product_index, ids, {"product_type": {"handbag"}, "color": {"red"}})
    for hit in results:
        assert set(hit.explain["boost"]["matched"]) == by_statement.get(str(hit.id), set())
    assert ids[0] in by_statement and by_statement[ids[0]] == {"product_type", "color"}


def test_listing_the_candidates_changes_no_count(totes):
    """The rows listed for the re-rank are counted once: facets and total as with understanding off (its
    values are soft, so both search the same candidates)."""
    on, off = _search("crimson tote"), _search("crimson tote", understand=False)
    assert on.facets == off.facets and on.total == off.total
    counts = {c["value"]: c["count"] for c in on.facets["product_type"]}
    assert counts["handbag"] == 30  # every tote matches "tote": the vector candidates among them count once


@pytest.mark.parametrize("facets_over", ["matches", "results"])  # values read with the counts, or by statement
def test_a_product_whose_color_changed_is_ranked_by_its_new_color(totes, product_index, encoder, settings, facets_over):
    from catalog_search.indexing import sync

    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "FACETS_OVER": facets_over}
    blue = next(p for p in totes if p.color == "blue")
    results = _search(f"red tote {blue.title.split()[1]}")  # its own number: among the candidates
    hit = next(h for h in results if str(h.id) == str(blue.pk))
    assert hit.explain["boost"]["matched"] == {"product_type": ["handbag"]}
    blue.color = "red"
    blue.save()
    assert not sync.reindex(product_index, encoder).failed
    results = _search(f"red tote {blue.title.split()[1]}")
    hit = next(h for h in results if str(h.id) == str(blue.pk))
    assert hit.explain["boost"]["matched"] == {"product_type": ["handbag"], "color": ["red"]}
    assert results.results[0].explain["boost"]["matched"] == hit.explain["boost"]["matched"]  # the first tier
