"""What the re-rank by tier reads from the shop's tables (``boost._matching``, ``boost._values``): one
statement each, the ids as one array parameter, relations followed without repeating rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog_search.registry import get_index
from catalog_search.retrieval import boost
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
    values = boost._values(index, ids, ["tags__name", "author__name"])
    assert values[str(tagged.pk)] == {"tags__name": {"red", "wool"}, "author__name": {"Ada"}}
    assert values[str(bare.pk)] == {}  # no tag, no author: nothing to vote with
