"""Search analytics against the real embedded PostgreSQL, Redis and a Celery worker: what a search records
(and never: photos, IP addresses), the events endpoint and its refusals, the writer thread, the admin
screen's numbers against the recorded rows, CSV export, permissions, and the purge."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.utils import timezone

from catalog_search.analytics import purge, record
from catalog_search.indexing import sync
from catalog_search.models import SearchEvent, SearchInteraction
from tests.conftest import png_bytes
from tests.worker import Worker, wait_for

VISITOR = {"HTTP_X_SEARCH_VISITOR": "browser-a"}


@pytest.fixture
def shop(make_product, product_index, encoder):
    made = [
        make_product("Leather tote", brand="Kestrel"),
        make_product("Canvas tote", brand="Acme"),
        make_product("Folding umbrella", category="accessories"),
    ]
    assert not sync.reindex(product_index, encoder).failed
    return [str(p.pk) for p in made]


def _settings(**overrides):
    from django.conf import settings

    return override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, **overrides})


def _search(client: Client, q: str, visitor: str = "browser-a", **params) -> dict:
    response = client.get("/api/search/", {"q": q, "mode": "bm25", **params}, HTTP_X_SEARCH_VISITOR=visitor)
    assert response.status_code == 200
    return response.json()


def _event(client: Client, body: dict | str, **headers):
    content = body if isinstance(body, str) else json.dumps(body)
    return client.post("/api/events/", content, content_type="application/json", **headers)


def test_a_search_is_recorded_with_what_it_understood_and_found(client: Client, shop):
    data = _search(client, "  Red TOTE ", category="bags")
    assert SearchEvent.objects.count() == 0  # buffered: the search did not write
    assert record.flush() == 1
    row = SearchEvent.objects.get()
    assert str(row.search_id) == data["search_id"].split(":")[0]
    assert (row.kind, row.query, row.filters, row.visitor, row.user_id) == (
        "text",
        "red tote",
        {"category": ["bags"]},
        "browser-a",
        "",
    )
    assert row.results == data["total"]["value"] and row.took_ms == data["took_ms"]
    assert row.understood == data["query"]["understood"]
    assert {f.name for f in SearchEvent._meta.get_fields()}.isdisjoint({"ip", "ip_address", "remote_addr"})


def test_a_photo_is_never_recorded(client: Client, shop):
    photo = png_bytes((200, 30, 30))
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        "/api/search/image/", {"image": SimpleUploadedFile("p.png", photo, "image/png"), "q": "in red"}
    )
    assert response.status_code == 200
    record.flush()
    row = SearchEvent.objects.get()
    assert (row.kind, row.query) == ("photo+text", "in red")
    assert photo[:40].hex() not in str(SearchEvent.objects.values().get())


def test_analytics_off_records_nothing(client: Client, shop):
    with _settings(ANALYTICS=False):
        assert "search_id" not in _search(client, "tote")
        assert (
            _event(client, {"search_id": "x", "event": "click", "type": "shop.product", "id": shop[0]}).status_code
            == 400
        )
    assert record.flush() == 0


def test_events_are_recorded_and_bad_ones_refused(client: Client, shop):
    search_id = _search(client, "tote")["search_id"]
    good = {"search_id": search_id, "event": "click", "type": "shop.product", "id": shop[0], "position": 1}
    response = _event(client, good, **VISITOR)
    assert response.status_code == 202 and response.json() == {"recorded": "click"}
    forged = search_id.split(":")[0] + ":" + "A" * 27
    for body, code in [
        ({**good, "search_id": str(uuid.uuid4())}, "unknown_search"),
        ({**good, "search_id": forged}, "unknown_search"),
        ({**good, "id": "999999"}, "unknown_object"),
        ({**good, "id": "not-a-key"}, "unknown_object"),
        ({**good, "event": "purchase"}, "invalid_parameter"),
        ({**good, "type": "auth.user"}, "invalid_parameter"),
        ({**good, "position": 0}, "invalid_parameter"),
        ({**good, "position": True}, "invalid_parameter"),
        ({**good, "ip": "10.0.0.1"}, "invalid_parameter"),
        ([good], "invalid_parameter"),
    ]:
        response = _event(client, body)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, body
    assert _event(client, "{not json").status_code == 400
    assert client.post("/api/events/", good).status_code == 415  # a form, not JSON
    record.flush()
    row = SearchInteraction.objects.get()
    assert (row.kind, row.object_id, row.position, row.visitor) == ("click", shop[0], 1, "browser-a")
    assert str(row.search_id) == search_id.split(":")[0]


def test_a_flood_of_events_is_throttled(client: Client, shop):
    from django.core.cache import cache

    cache.clear()
    search_id = _search(client, "tote")["search_id"]
    good = {"search_id": search_id, "event": "add_to_cart", "type": "shop.product", "id": shop[1]}
    with _settings(THROTTLE_EVENTS="3/minute"):
        codes = [_event(client, good).status_code for _ in range(5)]
    cache.clear()
    assert codes == [202, 202, 202, 429, 429]


def test_the_writer_thread_writes_on_its_own(transactional_db, client: Client, shop):
    with _settings(ANALYTICS_FLUSH_SECONDS=0.2):
        _search(client, "umbrella")
        found = wait_for(lambda: SearchEvent.objects.filter(query="umbrella").exists(), timeout=10, message="the row")
        assert found
        # An interval without searches: the thread ends, and its connection with it.
        wait_for(lambda: not record.searches._thread, timeout=10, message="the writer to finish")


# The admin screen -----------------------------------------------------------------------------------------


@pytest.fixture
def analyst(db):
    user = User.objects.create_user("analyst", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_analytics"))
    return user


def test_the_dashboard_counts_equal_the_recorded_events(client: Client, shop, analyst):
    api = Client()
    ids = {}
    for q, visitor in [("tote", "a"), ("tote", "b"), ("Tote", "a"), ("zzzz", "a"), ("zzzz", "c"), ("umbrella", "b")]:
        ids.setdefault(q.lower(), _search(api, q, visitor)["search_id"])
    assert (
        _event(api, {"search_id": ids["tote"], "event": "click", "type": "shop.product", "id": shop[0]}).status_code
        == 202
    )
    record.flush()
    SearchEvent.objects.create(
        search_id=uuid.uuid4(),
        created_at=timezone.now() - timedelta(days=40),
        kind="text",
        query="tote",
        results=2,
        took_ms=1,
    )
    client.force_login(analyst)
    page = client.get("/admin/catalog_search/searchevent/", {"days": "30"})
    assert page.status_code == 200
    summary = page.context["summary"]
    recent = SearchEvent.objects.filter(created_at__gte=timezone.now() - timedelta(days=30))
    assert summary["searches"] == recent.count() == 6
    assert summary["visitors"] == recent.values("visitor").distinct().count() == 3
    assert summary["no_results"] == recent.filter(results=0).count() == 2
    assert summary["clicked"] == 1
    tables = page.context["tables"]
    assert [(r.query, r.searches, r.visitors, r.clicked) for r in tables["top"]] == [
        ("tote", 3, 2, 1),
        ("zzzz", 2, 2, 0),
        ("umbrella", 1, 1, 0),
    ]
    assert [r.query for r in tables["no_results"]] == ["zzzz"]
    assert [r.query for r in tables["no_clicks"]] == ["umbrella"]
    assert sum(bar["count"] for bar in page.context["chart"]["bars"]) == 6 and len(page.context["chart"]["bars"]) == 30
    csv = client.get("/admin/catalog_search/searchevent/", {"days": "30", "export": "top"})
    assert csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines()[:2] == [
        "query,searches,visitors,average results,clicked searches,click rate",
        "tote,3,2,2.0,1,0.333",
    ]
    older = client.get("/admin/catalog_search/searchevent/", {"days": "90"}).context["summary"]
    assert older["searches"] == 7


def test_a_query_shaped_like_a_formula_is_text_in_the_csv(client: Client, shop, analyst):
    _search(Client(), "=HYPERLINK(1)")
    record.flush()
    client.force_login(analyst)
    csv = client.get("/admin/catalog_search/searchevent/", {"export": "no_results"}).content.decode()
    assert csv.splitlines()[1].startswith("'=hyperlink(1)")


def test_viewing_analytics_needs_its_own_permission(client: Client, db):
    editor = User.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(*Permission.objects.filter(codename__in=["change_queryrule", "change_synonym"]))
    client.force_login(editor)
    assert client.get("/admin/catalog_search/searchevent/").status_code == 403
    assert "searchevent" not in client.get("/admin/").content.decode()


# The purge --------------------------------------------------------------------------------------------------


def _aged(days: int, query: str) -> None:
    when = timezone.now() - timedelta(days=days)
    sid = uuid.uuid4()
    SearchEvent.objects.create(search_id=sid, created_at=when, kind="text", query=query, results=1, took_ms=1)
    SearchInteraction.objects.create(
        search_id=sid, created_at=when, kind="click", object_type="shop.product", object_id="1"
    )


def test_the_purge_deletes_what_is_past_retention_and_nothing_else(db):
    _aged(100, "old")
    _aged(89, "recent")
    assert purge.purge() == {"searches": 1, "interactions": 1}
    assert list(SearchEvent.objects.values_list("query", flat=True)) == ["recent"]
    with _settings(ANALYTICS_RETENTION_DAYS=30):
        assert purge.purge() == {"searches": 1, "interactions": 1}
    assert not SearchEvent.objects.exists() and not SearchInteraction.objects.exists()


def test_the_purge_task_runs_on_the_worker(transactional_db):
    from catalog_search.tasks import purge_analytics

    _aged(200, "old")
    _aged(1, "kept")
    worker = Worker(beat=False).start()
    try:
        purge_analytics.delay()
        wait_for(lambda: not SearchEvent.objects.filter(query="old").exists(), timeout=60, message="the purge")
    finally:
        worker.stop()
    assert list(SearchEvent.objects.values_list("query", flat=True)) == ["kept"]
    assert SearchInteraction.objects.count() == 1


# Popular queries as suggestions -------------------------------------------------------------------------------


def test_popular_queries_feed_the_suggestions(client: Client, shop):
    from catalog_search.retrieval import popular

    for q, visitor in [("leather tote", "a"), ("leather tote", "b"), ("Leather Tote", "a"), ("leather secret", "a")]:
        _search(client, q, visitor)
    _search(client, "lea", "c", category="no-such-category")  # found nothing: never suggested
    _search(client, "lea", "d", category="no-such-category")
    record.flush()
    popular.forget()
    response = client.get("/api/suggest/", {"q": "lea"})
    completions = response.json()["completions"]
    assert completions[0]["text"] == "leather tote" and completions[0]["source"] == "query"
    assert completions[0]["count"] == 2  # the most results one of its searches found
    texts = [c["text"] for c in completions]
    assert "leather secret" not in texts  # one browser's query is never shown to another
    assert texts.count("leather tote") == 1 and "leather" in texts  # the catalog's words follow
    with _settings(SUGGEST_POPULAR=False):
        assert all(c["source"] != "query" for c in client.get("/api/suggest/", {"q": "lea"}).json()["completions"])
