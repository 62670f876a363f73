"""Query rules against the real embedded PostgreSQL: pins, hides, boosts and buries, redirects, dates and
matching, what ``explain`` and the echo say, bad rules never failing a search, and the admin screen's checks,
log and permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from catalog_search import rules
from catalog_search.indexing import sync
from catalog_search.models import QueryRule, RuleProduct
from catalog_search.retrieval.engine import search
from demo_project.shop.models import Product


@pytest.fixture(autouse=True)
def fresh_copy():
    rules.forget()
    yield
    rules.forget()


@pytest.fixture
def shop(make_product, product_index, encoder):
    made = {
        "kestrel": make_product("Leather tote", brand="Kestrel", price="80.00"),
        "acme": make_product("Canvas tote", brand="Acme", price="20.00"),
        "orla": make_product("Straw tote", brand="Orla", price="30.00"),
        "umbrella": make_product("Folding umbrella", brand="Acme", category="accessories", price="15.00"),
        "gone": make_product("Old umbrella", brand="Acme", category="accessories", in_stock=False),
    }
    assert not sync.reindex(product_index, encoder).failed
    return {name: str(p.pk) for name, p in made.items()}


def ids(results) -> list[str]:
    return [str(hit.id) for hit in results]


def rule(query: str, *, pins=(), hides=(), **fields) -> QueryRule:
    row = QueryRule.objects.create(name=f"rule for {query}", query=query, **fields)
    for position, oid in pins:
        RuleProduct.objects.create(rule=row, action="pin", object_id=oid, position=position)
    for oid in hides:
        RuleProduct.objects.create(rule=row, action="hide", object_id=oid)
    rules.forget()
    return row


def test_pins_put_products_at_their_positions(shop):
    before = ids(search("tote", mode="bm25"))
    assert shop["umbrella"] not in before and len(before) == 3
    row = rule("tote", pins=[(1, shop["umbrella"]), (3, before[0])])
    results = search("tote", mode="bm25", explain=True)
    assert ids(results) == [shop["umbrella"], before[1], before[0], before[2]]
    assert results.query["rules"] == [{"id": row.pk, "name": "rule for tote"}]
    assert results.results[0].explain["rules"] == [
        {"rule": row.pk, "name": "rule for tote", "action": "pin", "position": 1}
    ]
    assert search("tote", mode="bm25", k=2, offset=2).results[0].id == int(before[0])  # positions span pages


def test_hides_remove_products_also_when_sorted(shop):
    rule("tote", hides=[shop["acme"]])
    assert shop["acme"] not in ids(search("tote", mode="bm25"))
    by_price = search("tote", mode="bm25", sort="price")
    assert ids(by_price) == [shop["orla"], shop["kestrel"]]


def test_boost_and_bury_by_a_filter(shop):
    plain = ids(search("tote", mode="bm25"))
    rule("tote", boost_filter="brand=Orla", boost_factor=50)
    boosted = search("tote", mode="bm25", explain=True)
    assert ids(boosted)[0] == shop["orla"]
    assert boosted.results[0].explain["rules"][0]["action"] == "boost"
    QueryRule.objects.update(boost_filter="brand=Orla&brand=Kestrel", boost_factor=0.01)
    rules.forget()
    assert ids(search("tote", mode="bm25"))[0] == shop["acme"]
    assert sorted(ids(search("tote", mode="bm25"))) == sorted(plain)


def test_is_contains_dates_index_and_redirect(shop):
    now = timezone.now()
    rule("tote", pins=[(1, shop["umbrella"])])
    assert ids(search("Totes", mode="bm25"))[0] == shop["umbrella"]  # compared as index terms
    assert ids(search("canvas tote", mode="bm25"))[0] != shop["umbrella"]  # "is": the whole query
    rule("tote", match="contains", redirect_url="/sale/totes/", starts_at=now - timedelta(days=1))
    assert search("canvas tote", mode="bm25").query["redirect"] == "/sale/totes/"
    rule("umbrella", redirect_url="/later/", starts_at=now + timedelta(days=1))
    rule("umbrella", redirect_url="/before/", ends_at=now - timedelta(seconds=1))
    rule("umbrella", redirect_url="/elsewhere/", index="otherapp.article")
    assert "redirect" not in search("umbrella", mode="bm25").query


def test_the_page_follows_a_redirect_and_never_a_script(shop, client: Client):
    rule("tote", redirect_url="/sale/totes/")
    response = client.get("/", {"q": "Tote"})
    assert response.status_code == 302 and response["Location"] == "/sale/totes/"
    assert client.get("/", {"q": "tote", "page": "2"}).status_code == 200  # a later page stays a page
    QueryRule.objects.update(redirect_url="javascript:alert(1)")  # around the admin's check
    rules.forget()
    assert "redirect" not in search("tote", mode="bm25").query
    assert client.get("/", {"q": "tote"}).status_code == 200


def test_a_pin_respects_the_filters_and_skips_deleted_products(shop):
    rule("tote", pins=[(1, shop["gone"]), (2, shop["umbrella"]), (3, "999999")])
    assert ids(search("tote", mode="bm25"))[:2] == [shop["gone"], shop["umbrella"]]
    assert shop["gone"] not in ids(search("tote", mode="bm25", filters={"in_stock": True}))
    Product.objects.filter(pk=shop["umbrella"]).delete()
    assert shop["umbrella"] not in ids(search("tote", mode="bm25"))


def test_overlapping_rules_the_older_wins_a_position(shop):
    first = rule("tote", pins=[(1, shop["umbrella"])])
    second = rule("tote", pins=[(1, shop["gone"])], match="contains")
    results = search("tote", mode="bm25")
    assert ids(results)[0] == shop["umbrella"] and shop["gone"] not in ids(results)
    assert [r["id"] for r in results.query["rules"]] == [first.pk, second.pk]


def test_a_bad_rule_never_fails_a_search(shop, client: Client):
    rule("tote", boost_filter="no_such_field=1", boost_factor=2)
    rule("tote", boost_filter="price__gte=not-a-number", boost_factor=2)
    rule("tote", pins=[(1, "not a key"), (0, shop["acme"])])
    response = client.get("/api/search/", {"q": "tote", "mode": "bm25"})
    assert response.status_code == 200 and len(response.json()["results"]) == 3


# The admin --------------------------------------------------------------------------------------------------

_FORM = {
    "name": "totes",
    "enabled": "on",
    "index": "",
    "match": "is",
    "query": "tote",
    "boost_factor": "1.0",
    "products-TOTAL_FORMS": "0",
    "products-INITIAL_FORMS": "0",
    "products-MIN_NUM_FORMS": "0",
    "products-MAX_NUM_FORMS": "1000",
}


def _products(*rows: tuple[str, str, str]) -> dict:
    form = {"products-TOTAL_FORMS": str(len(rows))}
    for n, (action, oid, position) in enumerate(rows):
        form |= {f"products-{n}-action": action, f"products-{n}-object_id": oid, f"products-{n}-position": position}
    return form


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("staff", "staff@example.com", "pw")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"query": "the"}, "no searchable word"),
        ({"boost_factor": "0"}, "above 0"),
        ({"boost_factor": "2"}, "needs a filter"),
        ({"boost_filter": "no_such_field=1", "boost_factor": "2"}, "no_such_field"),
        ({"redirect_url": "javascript:alert(1)"}, "http(s)://"),
        ({"redirect_url": "//evil.example/"}, "http(s)://"),
        (
            {"starts_at_0": "2026-12-10", "starts_at_1": "00:00", "ends_at_0": "2026-12-01", "ends_at_1": "00:00"},
            "ends after",
        ),
    ],
)
def test_the_admin_refuses_bad_rules(client: Client, staff, changes, message):
    client.force_login(staff)
    response = client.post("/admin/catalog_search/queryrule/add/", {**_FORM, **changes})
    assert response.status_code == 200 and message in response.content.decode()
    assert not QueryRule.objects.exists()


def test_the_admin_checks_the_products_saves_and_logs(client: Client, staff, shop):
    client.force_login(staff)
    bad = [("pin", shop["acme"], ""), ("pin", shop["orla"], "2"), ("pin", shop["kestrel"], "2"), ("hide", "999999", "")]
    response = client.post("/admin/catalog_search/queryrule/add/", {**_FORM, **_products(*bad)})
    page = response.content.decode()
    assert "A pin needs a position" in page and "Another pin of this rule" in page and "No product" in page
    assert not QueryRule.objects.exists()
    good = [("pin", shop["umbrella"], "1"), ("hide", shop["acme"], "")]
    response = client.post("/admin/catalog_search/queryrule/add/", {**_FORM, **_products(*good)})
    assert response.status_code == 302
    row = QueryRule.objects.get()
    assert LogEntry.objects.filter(object_id=str(row.pk), action_flag=ADDITION).exists()
    results = ids(search("tote", mode="bm25"))  # the admin's save reached this process's copy at once
    assert results[0] == shop["umbrella"] and shop["acme"] not in results


def test_viewing_rules_is_not_editing_them(client: Client, db):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_queryrule"))
    client.force_login(viewer)
    assert client.get("/admin/catalog_search/queryrule/").status_code == 200
    assert client.post("/admin/catalog_search/queryrule/add/", _FORM).status_code == 403
    assert not QueryRule.objects.exists()
