"""The candidates' query-field values that the re-rank by tier reads (``boost._values``): one statement
with the ids as one array parameter, relations followed, to-many values merged per object."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog_search.registry import get_index
from catalog_search.retrieval import boost
from tests.testapp.models import Article, Author, Tag

pytestmark = pytest.mark.django_db


def test_values_of_many_candidates_in_one_statement_with_one_array_parameter(make_product, product_index):
    made = [
        make_product(f"Bag {i}", product_type="handbag" if i % 2 else "backpack", color="red", image=None)
        for i in range(300)
    ]
    wanted = [str(p.pk) for p in made] + ["999999999"]  # an id nothing has is left out
    with CaptureQueriesContext(connection) as queries:
        found = boost._values(product_index, wanted, ["product_type", "color"])
    assert len(queries) == 1
    sql = queries[0]["sql"]
    assert "IN (SELECT unnest(" in sql and sql.count(",") < 50 + len(made)  # not one placeholder per id
    assert set(found) == {str(p.pk) for p in made}
    assert found[str(made[1].pk)] == {"product_type": {"handbag"}, "color": {"red"}}
    assert found[str(made[2].pk)] == {"product_type": {"backpack"}, "color": {"red"}}


def test_values_follow_relations_and_merge_to_many_rows():
    author = Author.objects.create(name="Ada ")
    tagged = Article.objects.create(headline="Tagged", body="", section="news", author=author)
    tagged.tags.set([Tag.objects.create(name="red"), Tag.objects.create(name="wool")])
    bare = Article.objects.create(headline="Bare", body="", section="news")
    found = boost._values(get_index(Article), [str(tagged.pk), str(bare.pk)], ["tags__name", "author__name"])
    assert found[str(tagged.pk)] == {"tags__name": {"red", "wool"}, "author__name": {"Ada"}}
    assert found[str(bare.pk)] == {}  # no tag, no author: nothing to boost by
