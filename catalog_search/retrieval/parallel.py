"""Run the keyword statement on a second database connection while the request's thread searches vectors.

A text search makes two independent trips to PostgreSQL: the vector search (graph walk, filter check)
and the BM25 statement (with the facet counts). One after the other, a search waits for both; side by
side on two connections, for the longer one (docs/benchmarks.md, search latency). With
``CATALOG_SEARCH["PARALLEL_RETRIEVAL"]`` on, the keyword statement runs in the process's helper thread, on
its own Django connection (opened, reused and closed under the same ``CONN_MAX_AGE`` / health-check rules
as a request's, by ``close_old_connections`` before and after each job).

Only a search running alone in its process gets the helper: when several run at once they already keep
the cores busy, and handing work to another thread then only costs (fewer searches per second under
concurrent load: docs/benchmarks.md). Such searches, and any search while the helper is busy,
run the keyword statement in the request's thread after the vector search, as with the setting off.
Inside a transaction (``ATOMIC_REQUESTS``, a test case, a search inside ``transaction.atomic()``) the
second connection could not see the transaction's own writes, so everything runs in the request's thread.
The helper reads the database the search reads (a read replica's too: the search's context goes along).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from django.db import close_old_connections

from catalog_search import conf, databases

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_helper_busy = False
_searches = 0  # searches running in this process


@contextlib.contextmanager
def search_running() -> Iterator[None]:
    """Marks one search of this process as running (the engine wraps each search in it)."""
    global _searches
    with _lock:
        _searches += 1
    try:
        yield
    finally:
        with _lock:
            _searches -= 1


def _reserve() -> ThreadPoolExecutor | None:
    """The helper, if the setting is on, this is the process's only running search and the helper is idle
    (it is then reserved for one job); else None."""
    global _executor, _helper_busy
    if not conf.settings().PARALLEL_RETRIEVAL:
        return None
    with _lock:
        if _searches > 1 or _helper_busy:
            return None
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-search")
        _helper_busy = True
        return _executor


def _release() -> None:
    global _helper_busy
    with _lock:
        _helper_busy = False


def _job(fn: Callable[[], T]) -> T:
    close_old_connections()  # as at the start of a request: drop a connection that is too old or broken
    try:
        return fn()
    finally:
        try:
            close_old_connections()  # as at the end of one: with CONN_MAX_AGE = 0 the connection closes here
        finally:
            _release()


class Deferred(Generic[T]):
    """``fn()``, started in the helper thread when it may be; ``result()`` returns its value (or raises its
    exception), running it in the calling thread if the helper did not take it."""

    def __init__(self, fn: Callable[[], T], allowed: bool = True) -> None:
        """``allowed``: whether the caller has other work meanwhile (else a helper only adds a hand-off)."""
        self.fn = fn
        self.future: Future[T] | None = None
        if allowed and not databases.connection().in_atomic_block:
            pool = _reserve()
            if pool is not None:
                # The search's context (which database it reads: databases.py) goes along to the helper.
                self.future = pool.submit(_job, functools.partial(contextvars.copy_context().run, fn))

    def result(self) -> T:
        if self.future is not None:
            return self.future.result()
        return self.fn()
