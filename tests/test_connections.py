"""Database connections stay bounded under traffic, served as the demo serves the app (gunicorn with
threads, demo_project/gunicorn.conf.py) and PARALLEL_RETRIEVAL's helper thread counted: a real
PostgreSQL, a real server process, several hundred searches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from catalog_search.indexing import sync
from tests import worker
from tests.services import free_port

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS, THREADS = 2, 4
QUERIES = ["red tote", "blue sneaker", "lamp", "wool scarf", "green kettle", "black backpack"]


def backends() -> int:
    """Connections to the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@pytest.fixture
def server(make_product, product_index, encoder):
    for i, query in enumerate(QUERIES * 5):
        make_product(f"{query} {i}", image=b"auto" if i % 2 else None)
    sync.reindex(product_index, encoder)
    port = free_port()
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=worker.test_database_url(),
        DEMO_BIND=f"127.0.0.1:{port}",
        DEMO_WORKERS=str(WORKERS),
        DEMO_THREADS=str(THREADS),
        # Persistent connections, as the demo's settings have them (the test settings turn them off).
        CATALOG_SEARCH_JSON=json.dumps({"PARALLEL_RETRIEVAL": True, "THROTTLE_TEXT": None}),
        TEST_CONN_MAX_AGE="60",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "demo_project.wsgi", "-c", "demo_project/gunicorn.conf.py"],
        cwd=worker.ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/search/?q=warm&k=1", timeout=30).read()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        return response.status


def test_hundreds_of_searches_keep_the_connections_bounded(server):
    budget = WORKERS * (THREADS + 1)  # a connection per request thread and per search helper thread
    seen = []
    for _ in range(6):
        # 50 one after the other (the single client), then 50 from 8 clients at once.
        for i in range(50):
            q = QUERIES[i % len(QUERIES)].replace(" ", "+")
            assert get(f"{server}/api/search/?q={q}&k=10") == 200
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(get, [f"{server}/api/search/?q={QUERIES[i % 6]}&k=5".replace(" ", "+") for i in range(50)])
            )
        assert statuses == [200] * 50
        seen.append(backends())
    assert max(seen) <= budget, f"backends after each 100 searches: {seen} (budget {budget})"


def trickle(port: int, stop: threading.Event) -> None:
    """A slow client: a photo upload sent one byte every 100 ms until ``stop``."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = (
            b"POST /api/search/image/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b'Content-Length: 100000\r\n\r\n--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        )
        for byte in head + b"\x89PNG" * 1000:
            if stop.is_set():
                return
            sock.sendall(bytes([byte]))
            time.sleep(0.1)


def test_slow_idle_and_vanishing_clients_do_not_stop_the_others(server):
    """200 connections held silent, uploads trickled a byte at a time and clients that hang up
    mid-response: the other clients' searches are still answered (the demo's gunicorn configuration
    parks a silent connection after 50 ms instead of giving it a thread for 5 s; the limits, measured,
    are in docs/configuration.md)."""
    port = int(server.rsplit(":", 1)[1])
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(200)]
    stop = threading.Event()
    slow = [threading.Thread(target=trickle, args=(port, stop), daemon=True) for _ in range(2)]
    for thread in slow:
        thread.start()
    try:
        for _ in range(20):  # ask for a large page, hang up before reading it
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /api/search/?q=red+tote&k=100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(1)
        statuses = [get(f"{server}/api/search/?q={QUERIES[i % 6].replace(' ', '+')}&k=10") for i in range(30)]
        assert statuses == [200] * 30
    finally:
        stop.set()
        for sock in held:
            sock.close()
        for thread in slow:
            thread.join(timeout=5)
