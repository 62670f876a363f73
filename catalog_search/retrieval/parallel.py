"""Run the keyword statement on a second database connection while the request's thread searches vectors.

A text search makes two independent trips to PostgreSQL: the vector search (graph walk, filter check)
and the BM25 statement (with the facet counts). One after the other, a search waits for both; side by
side on two connections, for the longer one (docs/benchmarks.md, search latency). The keyword statement
runs in one of ``CATALOG_SEARCH["PARALLEL_RETRIEVAL"]`` helper threads per process, each with its own
Django connection (opened, reused and closed under the same ``CONN_MAX_AGE`` / health-check rules as a
request's, by ``close_old_connections`` before and after each job).

It never waits for a free helper: when every helper of the process is busy (other requests' searches), the
keyword statement runs in the request's thread after the vector search, as it would with the setting 0.
Inside a transaction (``ATOMIC_REQUESTS``, a test case, a search inside ``transaction.atomic()``) the
second connection could not see the transaction's own writes, so everything runs in the request's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from django.db import close_old_connections, connection

from catalog_search import conf

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_size = 0
_busy = 0  # helpers running or about to run a job


def _pool() -> ThreadPoolExecutor | None:
    """The process's helper threads (created on first use, replaced when the setting changes)."""
    global _executor, _size, _busy
    size = int(conf.get("PARALLEL_RETRIEVAL") or 0)
    with _lock:
        if size != _size:
            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="catalog-search") if size else None
            _size, _busy = size, 0
        return _executor


def _reserve() -> ThreadPoolExecutor | None:
    """The pool if one of its helpers is idle (now reserved for one job), else None."""
    global _busy
    pool = _pool()
    with _lock:
        if pool is None or pool is not _executor or _busy >= _size:
            return None
        _busy += 1
        return pool


def _job(pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
    close_old_connections()  # as at the start of a request: drop a connection that is too old or broken
    try:
        return fn()
    finally:
        try:
            close_old_connections()  # as at the end of one: with CONN_MAX_AGE = 0 the connection closes here
        finally:
            _release(pool)


def _release(pool: ThreadPoolExecutor) -> None:
    global _busy
    with _lock:
        if pool is _executor:
            _busy -= 1


class Deferred(Generic[T]):
    """``fn()``, started in an idle helper thread if there is one; ``result()`` returns its value (or
    raises its exception), having run it in the calling thread if no helper took it."""

    def __init__(self, fn: Callable[[], T], allowed: bool = True) -> None:
        """``allowed``: whether the caller has other work meanwhile (else a helper only adds a hand-off)."""
        self.fn = fn
        self.future: Future[T] | None = None
        if allowed and not connection.in_atomic_block:
            pool = _reserve()
            if pool is not None:
                try:
                    self.future = pool.submit(_job, pool, fn)
                except RuntimeError:  # shut down meanwhile: the setting changed in another thread
                    _release(pool)

    @property
    def parallel(self) -> bool:
        """Whether a helper thread runs (or ran) it."""
        return self.future is not None

    def result(self) -> T:
        if self.future is not None:
            return self.future.result()
        return self.fn()
