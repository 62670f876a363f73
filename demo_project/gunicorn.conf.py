"""How the demo is served: gunicorn with threads, as a shop would serve it (``scripts/demo.sh``).

Threads, not a thread per request: each of the ``workers x threads`` request threads keeps one database
connection (``CONN_MAX_AGE``), plus one for the search helper thread of each worker (PARALLEL_RETRIEVAL),
so the demo holds at most workers x (threads + 1) connections however long it runs (docs/configuration.md,
connection budget). Each worker loads the encoder and runs one search before it takes requests.
Every value can be overridden on the command line or in ``GUNICORN_CMD_ARGS``.
"""

import os

from gunicorn.workers import gthread

# gunicorn's threaded worker gives a new connection that has sent nothing yet a thread for up to 5 s
# before parking it in its poller, so silent connections held open starve the threads (200 of them
# delayed a search 110 s). Park them after 50 ms instead: a client whose request comes later is served
# from the poller, and a request that has started arriving is read as before (docs/configuration.md).
if hasattr(gthread, "DEFAULT_WORKER_DATA_TIMEOUT"):
    gthread.DEFAULT_WORKER_DATA_TIMEOUT = 0.05

bind = os.environ.get("DEMO_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DEMO_WORKERS", "2"))
threads = int(os.environ.get("DEMO_THREADS", "4"))
worker_class = "gthread"
timeout = 120  # a photo search on a cold worker loads the encoder
graceful_timeout = 10
accesslog = "-" if os.environ.get("DEMO_ACCESS_LOG") == "1" else None


def post_worker_init(worker) -> None:
    """Warm this worker up (encoder, query path), then close the connection the warm-up opened."""
    from django.db import connections

    from catalog_search import search

    try:
        search(q="warm up")
    except Exception as exc:  # an empty or unindexed catalog: the first shopper's search loads the rest
        worker.log.info("catalog_search warm-up: %s", exc)
    finally:
        connections.close_all()
