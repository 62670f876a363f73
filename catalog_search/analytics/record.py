"""Recording searches and shoppers' interactions without slowing a search.

A search served by the API (or the demo page) is recorded as a ``SearchEvent``: time, kind, the query as
typed (never the photo), what was understood, the filters, the number of results and ``took_ms``, under the
browser's anonymous id (the ``X-Search-Visitor`` header the page sends; never an IP address, and a user id
only with ``ANALYTICS_USER_IDS``). The row goes into this process's buffer, a list append, and a
background thread writes the buffer in one statement every ``ANALYTICS_FLUSH_SECONDS`` (or at 500 rows),
on its own connection, kept while searches come and closed when an interval passes without any (a new
connection per write cost more than the write: docs/benchmarks.md, *Search analytics*). So a search pays
microseconds, not a round trip or a broker publish; what a killed process had not written yet (at most
one interval) is lost: analytics, not orders.

Each recorded search gets an id the response carries (``search_id``, signed so that an event naming an
id this server never issued is refused), and the page posts clicks and adds to cart with it
(``POST /api/events/``, throttled).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from django.core import signing
from django.db import DatabaseError, close_old_connections, connection, models
from django.http import HttpRequest
from django.utils import timezone

from catalog_search import conf
from catalog_search.models import SearchEvent, SearchInteraction

logger = logging.getLogger(__name__)

MAX_ROWS = 500  # a buffer this long is written at once
_SIGNER = signing.Signer(salt="catalog_search.search_id")
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Buffer:
    """Rows of one model waiting to be written by this process's writer thread."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self._rows: list[models.Model] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, row: models.Model) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked worker: the parent's rows and thread are not ours
                self._rows, self._thread, self._pid = [], None, os.getpid()
            self._rows.append(row)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="catalog-search-analytics", daemon=True)
                self._thread.start()
            if len(self._rows) >= MAX_ROWS:
                self._wake.set()

    def flush(self) -> int:
        """Write what is waiting (on the calling thread's connection); how many rows were written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            self.model.objects.bulk_create(rows, batch_size=MAX_ROWS, ignore_conflicts=True)
        except DatabaseError as exc:  # the database is down: analytics give way, the shop goes on
            logger.warning("catalog_search: %d analytics rows not written: %s", len(rows), exc)
            return 0
        return len(rows)

    def _run(self) -> None:
        written = time.monotonic()
        while True:
            # Short waits, so a changed interval (or a full buffer) is seen within half a second.
            woken = self._wake.wait(min(0.5, conf.settings().ANALYTICS_FLUSH_SECONDS))
            if not woken and time.monotonic() - written < conf.settings().ANALYTICS_FLUSH_SECONDS:
                continue
            self._wake.clear()
            with self._lock:
                if not self._rows:  # a whole interval without a search: the thread ends, its connection too
                    self._thread = None
                    connection.close()
                    return
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - never let the writer die with rows behind it
                logger.exception("catalog_search: analytics write failed")
                connection.close()
            written = time.monotonic()


searches = Buffer(SearchEvent)
interactions = Buffer(SearchInteraction)


def flush() -> int:
    """Write both buffers now (tests, shutdown)."""
    return searches.flush() + interactions.flush()


def discard() -> None:
    """Drop what is waiting, unwritten (between tests)."""
    for buffer in (searches, interactions):
        with buffer._lock:
            buffer._rows = []


@atexit.register
def _at_exit() -> None:
    try:
        close_old_connections()
        flush()
    except Exception:  # noqa: BLE001 - the interpreter is going away
        logger.exception("catalog_search: analytics not written at exit")


def visitor(request: HttpRequest) -> str:
    """The browser's anonymous id (``X-Search-Visitor``), or "" when absent or malformed."""
    value = request.headers.get("X-Search-Visitor", "").strip()
    return value if _VISITOR.match(value) else ""


def _user(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if conf.settings().ANALYTICS_USER_IDS and user is not None and user.is_authenticated:
        return str(user.pk)[:64]
    return ""


def record_search(
    request: HttpRequest, *, kind: str, q: str | None, filters: Mapping[str, Any], results: Any
) -> str | None:
    """Buffer one search (module docstring); its signed id for the response, None when analytics are off."""
    if not conf.settings().ANALYTICS:
        return None
    search_id = uuid.uuid4()
    searches.add(
        SearchEvent(
            search_id=search_id,
            created_at=timezone.now(),
            kind=kind,
            query=" ".join((q or "").lower().split())[:512],
            understood=results.query.get("understood", {}),
            filters={str(k): v for k, v in list(filters.items())[:50]},
            results=results.total.value,
            took_ms=results.took_ms,
            visitor=visitor(request),
            user_id=_user(request),
        )
    )
    return _SIGNER.sign(str(search_id))


def search_uuid(signed: str) -> uuid.UUID | None:
    """The search a signed id names, None for an id this server never issued."""
    try:
        return uuid.UUID(_SIGNER.unsign(signed))
    except (signing.BadSignature, ValueError, TypeError):
        return None


def record_interaction(
    request: HttpRequest, *, search: uuid.UUID, kind: str, index: str, object_id: str, position: int | None
) -> None:
    interactions.add(
        SearchInteraction(
            search_id=search,
            created_at=timezone.now(),
            kind=kind,
            object_type=index,
            object_id=object_id,
            position=position,
            visitor=visitor(request),
        )
    )
