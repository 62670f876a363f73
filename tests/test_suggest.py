"""Suggestions while typing against the real embedded PostgreSQL: completions from the catalog's words and
query-field values, ranked by the products they find, the head's typos corrected, products for the first
completion, the endpoint's bad input and throttling."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

import catalog_search
from catalog_search import values as catalog_values
from catalog_search.exceptions import InvalidQuery
from catalog_search.indexing import sync
from catalog_search.retrieval import suggest as suggest_module
from catalog_search.retrieval.understanding.parse import parse
from demo_project.shop.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(make_product, product_index, encoder):
    catalog_values.forget()
    made = {
        "red_sneakers": make_product(
            "Red running sneakers", category="shoes", product_type="sneakers", brand="Kestrel", price="59.00"
        ),
        "white_sneakers": make_product(
            "White canvas sneakers", category="shoes", product_type="sneakers", color="white", price="49.00"
        ),
        "blue_sneakers": make_product(
            "Blue leather sneakers", category="shoes", product_type="sneakers", color="blue", price="79.00"
        ),
        "boots": make_product(
            "Brown hiking boots", category="shoes", product_type="hiking boots", color="brown", brand="Kestrel"
        ),
        "boots2": make_product(
            "Black hiking boots, waterproof", category="shoes", product_type="hiking boots", color="black"
        ),
        "snorkel": make_product("Snorkel mask for the beach", category="sports", product_type="snorkel", color="blue"),
        "tote": make_product("Red leather tote", product_type="handbag", description="A roomy bag"),
    }
    assert not sync.reindex(product_index, encoder).failed
    catalog_values.forget()
    return {name: str(p.pk) for name, p in made.items()}


def texts(found) -> list[str]:
    return [c.text for c in found.completions]


def test_a_prefix_completes_to_catalog_words_ranked_by_their_products(shop):
    found = catalog_search.suggest("sn")
    assert texts(found)[:2] == ["sneakers", "snorkel"]  # 3 sneakers, then the snorkel (a word and a type)
    sneakers = found.completions[0]
    assert sneakers.count == 3 and not sneakers.estimated
    assert all(t.startswith("sn") for t in texts(found))
    assert found.query == {"q": "sn", "prefix": "sn"}


def test_field_values_complete_across_words_and_name_their_field(shop):
    found = catalog_search.suggest("hiking bo")
    first = found.completions[0]
    assert (first.text, first.source, first.field, first.value, first.count) == (
        "hiking boots",
        "value",
        "product_type",
        "hiking boots",
        2,
    )
    brand = next(c for c in catalog_search.suggest("kes").completions if c.source == "value")
    assert (brand.text, brand.field, brand.value, brand.count) == ("kestrel", "brand", "Kestrel", 2)


def test_earlier_words_narrow_the_count(shop):
    found = catalog_search.suggest("red sn")
    assert texts(found) == ["red sneakers"]  # no red snorkel: nothing would be found
    assert found.completions[0].count == 1
    assert [p.id for p in found.products] == [int(shop["red_sneakers"])]


def test_a_typo_in_an_earlier_word_is_corrected_as_search_corrects_it(shop):
    found = catalog_search.suggest("snekers whi")
    assert texts(found)[0] == "sneakers white"
    assert found.query["corrected"] == {"words": {"snekers": "sneakers"}}
    assert [p.id for p in found.products] == [int(shop["white_sneakers"])]


def test_products_have_the_prefix_in_their_title_and_the_shape_a_dropdown_needs(shop):
    found = catalog_search.suggest("sneak", products=2)
    assert len(found.products) == 2
    for product in found.products:
        assert "sneakers" in product.title.lower()
        data = product.as_dict()
        assert set(data) == {"id", "type", "title", "price", "image_url", "url"}
        assert data["type"] == "shop.product" and data["image_url"].startswith("/media/")
        assert data["price"] in ("59.00", "49.00", "79.00")


def test_k_and_products_are_respected(shop):
    assert len(catalog_search.suggest("s", k=2).completions) == 2
    assert len(catalog_search.suggest("s", k=20).completions) > 2
    assert catalog_search.suggest("sneak", products=0).products == []
    assert len(catalog_search.suggest("sneak", products=1).products) == 1


def test_nothing_to_complete(shop):
    for q in (None, "", "   ", "?!…", "zzzq", "12345"):
        found = catalog_search.suggest(q)
        assert found.completions == [] and found.products == []


def test_bad_parameters_raise_invalid_query(shop):
    for kwargs in ({"k": 0}, {"k": 21}, {"k": "many"}, {"products": -1}, {"products": 99}):
        with pytest.raises(InvalidQuery):
            catalog_search.suggest("sn", **kwargs)
    with pytest.raises(InvalidQuery):
        catalog_search.suggest("s" * 513)
    with pytest.raises(InvalidQuery):
        catalog_search.suggest("sn\x00")


def test_parse_is_asked_only_when_a_head_word_is_missing(shop, monkeypatch):
    asked = []

    def spy(q, indexes, **kwargs):
        asked.append(q)
        return parse(q, indexes, **kwargs)

    monkeypatch.setattr(suggest_module, "parse", spy)
    assert texts(catalog_search.suggest("red sn")) == ["red sneakers"]  # every head word known: nothing to correct
    assert asked == []
    assert texts(catalog_search.suggest("snekers whi"))[0] == "sneakers white"
    assert asked == ["snekers"]
    found = catalog_search.suggest("zzzq sn")  # missing, and nothing near it: left out of the count
    assert asked[-1] == "zzzq" and "corrected" not in found.query
    assert texts(found)[:2] == ["zzzq sneakers", "zzzq snorkel"]
    assert found.completions[0].count == 3


def test_a_keystroke_costs_few_statements(shop):
    """Per index: the head's known terms and the prefix's words in one statement, the head's sample in one,
    the products in two (their ranking, then the objects)."""
    products = ["shop.product"]
    catalog_search.suggest("red sn", models=products)  # this process's copy of the field values, loaded once
    with CaptureQueriesContext(connection) as queries:
        found = catalog_search.suggest("red sn", models=products)
    assert [p.id for p in found.products] == [int(shop["red_sneakers"])]
    assert len(queries) == 4
    with CaptureQueriesContext(connection) as queries:
        assert catalog_search.suggest("sn", models=products).products  # no head: no sample
    assert len(queries) == 3


def test_counts_beyond_the_sample_are_estimates(shop, monkeypatch):
    monkeypatch.setattr(suggest_module, "SAMPLE", 1)
    found = catalog_search.suggest("leather sn")  # "leather" is in 2 documents, 1 is read
    assert found.completions[0].text == "leather sneakers"
    assert found.completions[0].estimated and found.completions[0].count == 2


def test_the_prefix_lookup_uses_the_text_pattern_index(shop):
    """The prefix is an index condition of the ``text_pattern_ops`` btree (which a default-collation btree
    cannot answer a LIKE with). A few thousand words of one model, so the planner's costs say which index
    answers best (on a handful of rows every index costs the same, and it may pick another)."""
    ct = catalog_search.get_index(Product).content_type.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO catalog_search_spelling (content_type_id, word, term) "
            "SELECT %s, 'w' || g, 'w' || g FROM generate_series(1, 3000) AS g",
            [ct],
        )
        cursor.execute("ANALYZE catalog_search_spelling")
        cursor.execute(
            f"EXPLAIN SELECT word FROM catalog_search_spelling WHERE content_type_id = {ct} AND word LIKE 'sne%'"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "catalog_search_spelling_prefix" in plan and "~>=~ 'sne'" in plan, plan


# The endpoint ----------------------------------------------------------------------------------------


def test_endpoint_answers_completions_and_products(shop):
    response = Client().get("/api/suggest/", {"q": "red sn", "k": "3"})
    assert response.status_code == 200
    data = response.json()
    assert data["completions"] == [
        {
            "text": "red sneakers",
            "source": "value",
            "count": 1,
            "estimated": False,
            "field": "product_type",
            "value": "sneakers",
        }
    ]
    assert data["products"][0]["id"] == int(shop["red_sneakers"])
    assert data["products"][0]["title"] == "Red running sneakers"
    assert data["query"] == {"q": "red sn", "prefix": "sn"} and data["took_ms"] >= 0


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 200),
        ({"q": ""}, 200),
        ({"q": "s"}, 200),
        ({"q": "s" * 512}, 200),
        ({"q": "s" * 513}, 400),
        ({"q": "sn\x00"}, 400),
        ({"q": "\x01\x02\x1b[31m sn\x7f"}, 200),
        ({"q": "!!! ??? ..."}, 200),
        ({"q": "'; DROP TABLE x; --"}, 200),
        ({"q": "100% sn_"}, 200),
        ({"q": "sn", "k": "0"}, 400),
        ({"q": "sn", "k": "abc"}, 400),
        ({"q": "sn", "k": "1e3"}, 400),
        ({"q": "sn", "products": "-1"}, 400),
        ({"q": "sn", "unknown": "1"}, 200),
    ],
)
def test_endpoint_bad_input_is_json_never_a_500(shop, params, status):
    response = Client().get("/api/suggest/", params)
    assert response.status_code == status, response.content
    data = response.json()
    if status == 400:
        assert data["error"]["code"] == "invalid_parameter"
    else:
        assert isinstance(data["completions"], list)


def test_endpoint_repeated_parameter_is_a_400(shop):
    response = Client().get("/api/suggest/?q=sn&q=bo")
    assert response.status_code == 400


def test_endpoint_is_throttled(shop, settings):
    from django.core.cache import cache

    cache.clear()
    with override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, "THROTTLE_SUGGEST": "2/minute"}):
        client = Client()
        statuses = [client.get("/api/suggest/", {"q": "sn"}).status_code for _ in range(3)]
    cache.clear()
    assert statuses == [200, 200, 429]


def test_endpoint_is_in_the_schema(shop):
    schema = Client().get("/api/schema/").json()
    operation = schema["paths"]["/api/suggest/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"q", "k", "products"}
