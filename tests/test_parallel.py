"""The keyword statement on a second connection (retrieval/parallel.py), against the real database.

These tests commit their data (transactional): the helper thread's connection sees only committed rows.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import catalog_search
from catalog_search.exceptions import IndexUnavailable
from catalog_search.indexing import sync
from catalog_search.retrieval import facets, parallel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def catalog(make_product, product_index, encoder):
    for i, (title, category, color) in enumerate(
        [
            ("Red leather tote bag", "bags", "red"),
            ("Blue canvas tote bag", "bags", "blue"),
            ("Red running shoes", "shoes", "red"),
            ("Black leather boots", "shoes", "black"),
            ("Green wool scarf", "accessories", "green"),
            ("Red wool beanie", "accessories", "red"),
            ("Brown leather belt", "accessories", "brown"),
        ]
    ):
        make_product(title, category=category, color=color, price=f"{20 + 15 * i}.00", in_stock=i % 3 != 0)
    sync.reindex(product_index, encoder)


@pytest.fixture
def keyword_threads(monkeypatch):
    """The name of the thread each keyword statement ran in (a spy: the real function runs)."""
    names: list[str] = []
    real = facets.keyword_matches_and_counts

    def spy(*args, **kwargs):
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(facets, "keyword_matches_and_counts", spy)
    return names


def _answer(results) -> tuple:
    return (
        [(hit.id, round(hit.score, 9), hit.scores, hit.ranks) for hit in results],
        results.facets,
    )


REQUESTS = [
    {"q": "red leather"},
    {"q": "leather", "filters": {"in_stock": True, "price__lte": 100}},
    {"q": "wool", "filters": {"category": ["accessories"]}},
    {"q": "tote", "fusion": "weighted"},
]


@pytest.mark.parametrize("request_args", REQUESTS)
def test_the_keyword_statement_runs_on_a_helper_with_the_same_answer(catalog, keyword_threads, request_args):
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": False}):
        serial = catalog_search.search(**request_args)
    # One keyword statement per searched model (the shop's products, the test app's articles if no filter
    # excludes them).
    calls = len(keyword_threads)
    assert calls and set(keyword_threads) == {threading.current_thread().name}
    keyword_threads.clear()
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": True}):
        side_by_side = catalog_search.search(**request_args)
    assert len(keyword_threads) == calls and all(name.startswith("catalog-search") for name in keyword_threads)
    assert serial.results, "the query finds something"
    assert _answer(side_by_side) == _answer(serial)


def test_inside_a_transaction_everything_runs_in_the_callers_thread(
    catalog, make_product, product_index, encoder, keyword_threads
):
    """The helper's connection could not see the transaction's own writes: a product saved and indexed
    in the same transaction is found by keyword, and counted."""
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": True}), transaction.atomic():
        product = make_product("Crimson velvet slippers", category="slippers", color="red")
        sync.index_instances(product_index, [product], encoder)
        results = catalog_search.search(q="velvet slippers")
        assert results.results[0].id == product.pk
        assert {"value": "slippers", "count": 1} in results.facets["category"]
        transaction.set_rollback(True)
    assert keyword_threads == [threading.current_thread().name] * 2


def test_when_the_helper_is_busy_the_callers_thread_runs_it(catalog, keyword_threads):
    """A search never waits for the helper."""
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": True}):
        expected = _answer(catalog_search.search(q="red leather"))
        keyword_threads.clear()
        release = threading.Event()
        busy = parallel.Deferred(lambda: release.wait(30))  # another job holds the helper
        assert busy.future is not None  # the helper took it
        started = time.monotonic()
        try:
            results = catalog_search.search(q="red leather")
        finally:
            release.set()
            busy.result()
    assert time.monotonic() - started < 20, "the search waited for the busy helper"
    assert keyword_threads == [threading.current_thread().name] * 2
    assert _answer(results) == expected


def test_a_search_running_beside_others_in_the_process_stays_in_its_thread(catalog, keyword_threads):
    """Several searches at once already keep the cores busy: only a search alone gets the helper."""
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": True}):
        with parallel.search_running():  # another request's search, in progress
            beside = _answer(catalog_search.search(q="red leather"))
        assert keyword_threads == [threading.current_thread().name] * 2
        keyword_threads.clear()
        alone = _answer(catalog_search.search(q="red leather"))
    assert all(name.startswith("catalog-search") for name in keyword_threads) and len(keyword_threads) == 2
    assert alone == beside


def test_a_database_error_in_the_helper_is_the_searchs_error(catalog, monkeypatch):
    """The helper's exception reaches the caller (the API answers 503), it is not lost in the thread.
    (Faked: a dropped connection in the middle of one statement cannot be caused on purpose.)"""

    def broken(*args, **kwargs):
        assert threading.current_thread().name.startswith("catalog-search")
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(facets, "keyword_matches_and_counts", broken)
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": True}), pytest.raises(IndexUnavailable):
        catalog_search.search(q="red leather")
    # The helper is still there for the next search, on a usable connection.
    monkeypatch.undo()
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": True}):
        assert catalog_search.search(q="red leather").results


def test_with_conn_max_age_0_the_helper_closes_its_connection(catalog):
    """As a request's connection does: nothing stays open between searches (a test database could not
    even be dropped)."""

    def others() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            return cursor.fetchone()[0]

    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    with override_settings(CATALOG_SEARCH={"PARALLEL_RETRIEVAL": True}), CaptureQueriesContext(connection) as queries:
        catalog_search.search(q="red leather")
    assert not any("scored" in q["sql"] for q in queries), "the keyword statement ran on another connection"
    deadline = time.monotonic() + 10  # a closed connection's server process exits a moment later
    while others() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert others() == 0
