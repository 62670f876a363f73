"""Admin: reindex action, status page, rebuild, live progress JSON, and the reindex permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from catalog_search.indexing import sync
from catalog_search.models import IndexRun, OutboxEntry

pytestmark = pytest.mark.django_db

STATUS = "admin:catalog_search_indexstatus_changelist"


@pytest.fixture
def products(make_product, product_index, encoder):
    items = [make_product(f"Canvas bag {i}") for i in range(3)]
    items.append(make_product("Broken lamp", image=b"not an image"))
    sync.reindex(product_index, encoder)
    OutboxEntry.objects.all().delete()  # the direct reindex above bypassed the outbox
    return items


def staff(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def operator(client):
    user = staff("operator", "catalog_search.reindex", "shop.view_product", "shop.change_product")
    client.force_login(user)
    return user


@pytest.fixture
def clerk(client):
    user = staff("clerk", "shop.view_product", "shop.change_product")
    client.force_login(user)
    return user


def test_status_page_shows_counts_failures_and_encoder(client, operator, products):
    response = client.get(reverse(STATUS))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Search index status" in html and "shop.product" in html
    assert "Broken lamp" not in html  # failures are listed by object id with the reason
    assert f"<code>{products[-1].pk}</code>" in html and "not an image" in html
    assert "[active]" not in html and "active, 24 dimensions" in html
    assert "(torch runtime)" in html and "Query-embedding cache:" in html
    status = client.get(reverse("admin:catalog_search_status_json")).json()
    product = next(m for m in status["models"] if m["label"] == "shop.product")
    assert (product["total"], product["indexed"], product["pending"], product["failed"]) == (4, 4, 0, 1)


def test_status_page_shows_the_query_cache_hit_rate(client, operator, products, settings):
    from catalog_search import search
    from catalog_search.retrieval import query_cache

    caches_alias = "query_cache"  # the Redis-backed alias of the demo settings (the tests' private Redis)
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "QUERY_CACHE": caches_alias}
    from django.core.cache import caches

    caches[caches_alias].clear()
    query_cache._down_until = 0.0
    for _ in range(4):
        search(q="red tote", mode="vector")
    html = client.get(reverse(STATUS)).content.decode()
    assert "<code>query_cache</code>, hit rate 75% (3 hits, 1 misses since " in html


def test_reindex_selected_action_queues_the_selection(client, operator, products):
    url = reverse("admin:shop_product_changelist")
    assert "reindex_selected" in client.get(url).content.decode()
    chosen = [products[0].pk, products[2].pk]
    response = client.post(url, {"action": "reindex_selected", "_selected_action": chosen}, follow=True)
    assert response.status_code == 200
    assert "2 products queued for reindexing" in response.content.decode()
    assert sorted(OutboxEntry.objects.values_list("object_id", flat=True)) == sorted(str(pk) for pk in chosen)
    assert all(OutboxEntry.objects.values_list("force", flat=True))
    assert IndexRun.objects.get().requested_by == "operator"


def test_rebuild_all_queues_everything_and_reports_progress(client, operator, products):
    assert client.get(reverse("admin:catalog_search_rebuild")).status_code == 405
    response = client.post(reverse("admin:catalog_search_rebuild"), follow=True)
    assert "Rebuild started: 4 objects queued." in response.content.decode()
    assert OutboxEntry.objects.count() == 4
    status = client.get(reverse("admin:catalog_search_status_json")).json()
    product = next(m for m in status["models"] if m["label"] == "shop.product")
    assert product["pending"] == 4 and product["progress"] == 0.0
    assert product["last_run"]["kind"] == "rebuild" and product["last_run"]["finished_at"] is None
    OutboxEntry.objects.filter(object_id__in=[str(p.pk) for p in products[:2]]).delete()
    status = client.get(reverse("admin:catalog_search_status_json")).json()
    assert next(m for m in status["models"] if m["label"] == "shop.product")["progress"] == 0.5
    html = client.get(reverse(STATUS)).content.decode()
    assert "(running)" in html and "setTimeout(refresh" in html


def test_without_the_permission_everything_is_forbidden(client, clerk, products):
    assert client.get(reverse(STATUS)).status_code == 403
    assert client.get(reverse("admin:catalog_search_status_json")).status_code == 403
    assert client.post(reverse("admin:catalog_search_rebuild")).status_code == 403
    changelist = client.get(reverse("admin:shop_product_changelist")).content.decode()
    assert "reindex_selected" not in changelist
    client.post(
        reverse("admin:shop_product_changelist"), {"action": "reindex_selected", "_selected_action": [products[0].pk]}
    )
    assert not OutboxEntry.objects.exists()
    assert "Index status" not in client.get(reverse("admin:index")).content.decode()


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse(STATUS))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_rebuild_needs_csrf(operator, products):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    assert strict.post(reverse("admin:catalog_search_rebuild")).status_code == 403
    assert not OutboxEntry.objects.exists()
