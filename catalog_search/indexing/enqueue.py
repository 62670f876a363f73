"""Enqueueing indexing work on the Celery broker without ever blocking or failing a save.

What a save enqueues after its commit is sent by one background thread per process (``send_later``), so a
broker that hangs or refuses never holds up the request: the save returns, and the send waits in that
thread. If the broker is unreachable, enqueueing gives up and stays quiet for
``BROKER_RETRY_AFTER_SECONDS``: the outbox row is already committed and the sweep enqueues it later.
With ``task_always_eager`` (tests of a shop) the send, and so the task, runs in the caller's thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable

from catalog_search import conf

logger = logging.getLogger(__name__)

PROCESS_TASK = "catalog_search.process_objects"  # tasks.process_objects

_state = threading.local()
_down_until = 0.0


def broker_error(timeout: float = 2.0) -> str | None:
    """None if the broker answers, else a sentence saying which broker could not be reached."""
    from celery import current_app
    from kombu.utils.url import maybe_sanitize_url

    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        return None
    except Exception as exc:  # kombu raises transport-specific errors
        url = current_app.conf.broker_url or "(CELERY_BROKER_URL is not set)"
        return f"No Celery broker is reachable at {maybe_sanitize_url(str(url))}: {exc}"


def enqueue(label: str, object_ids: Iterable[object]) -> bool:
    """Queue indexing tasks for ``object_ids`` of model ``label`` in batches; False if the broker is down."""
    global _down_until
    ids = [str(o) for o in object_ids]
    if not ids or time.monotonic() < _down_until:
        return False
    from celery import signature

    size = conf.settings().INDEX_BATCH_SIZE
    try:
        for start in range(0, len(ids), size):
            # By name (tasks.py imports this module): the registered task where this process has it, so
            # task_always_eager and the task's own options apply; else a plain send to the broker.
            signature(PROCESS_TASK, args=(label, ids[start : start + size])).apply_async(retry=False)
    except Exception as exc:  # broker down: the sweep will pick the outbox rows up
        _down_until = time.monotonic() + conf.settings().BROKER_RETRY_AFTER_SECONDS
        logger.warning("catalog_search: could not enqueue indexing (%s); the sweep will retry", exc)
        return False
    return True


def reset() -> None:
    """Forget a remembered broker failure (tests, or after the broker is back)."""
    global _down_until
    _down_until = 0.0


MAX_WAITING_SENDS = 10_000  # batches waiting for the sender thread; past it they are left to the sweep


class _Sender:
    """The process's background sender: a daemon thread draining a bounded queue of (label, ids)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.Queue[tuple[str, list[str]]] = queue.Queue(maxsize=MAX_WAITING_SENDS)
        threading.Thread(target=self._run, name="catalog-search-enqueue", daemon=True).start()

    def _run(self) -> None:
        while True:
            label, ids = self.queue.get()
            try:
                enqueue(label, ids)
            except Exception:  # never let the thread die: the outbox and the sweep still have the work
                logger.exception("catalog_search: enqueueing %d %s ids failed", len(ids), label)
            finally:
                self.queue.task_done()


_sender: _Sender | None = None
_sender_lock = threading.Lock()


def send_later(label: str, object_ids: Iterable[object]) -> None:
    """Enqueue from the background sender (at once with ``task_always_eager``); never blocks."""
    global _sender
    ids = [str(o) for o in object_ids]
    if not ids:
        return
    from celery import current_app

    if current_app.conf.task_always_eager:
        enqueue(label, ids)
        return
    with _sender_lock:
        if _sender is None or _sender.pid != os.getpid():  # none yet, or inherited through a fork
            _sender = _Sender()
        sender = _sender
    try:
        sender.queue.put_nowait((label, ids))
    except queue.Full:
        logger.warning(
            "catalog_search: %d batches wait for the broker; the sweep will enqueue the rest", MAX_WAITING_SENDS
        )


def drain(timeout: float = 5.0) -> bool:
    """Wait until the background sender has sent what it holds; False if it had not after ``timeout``."""
    sender = _sender
    deadline = time.monotonic() + timeout
    while sender is not None and sender.pid == os.getpid() and sender.queue.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


atexit.register(drain, 2.0)  # a script that saves and exits sends its batches (else the sweep would)


def enqueue_on_commit(label: str, object_id: object) -> None:
    """Enqueue after the current transaction commits, one batch per transaction and model."""
    from django.db import connection, transaction

    if not connection.in_atomic_block:
        transaction.on_commit(lambda: send_later(label, [object_id]))  # autocommit: runs right away
        return
    pending = getattr(_state, "pending", None)
    # A rolled-back transaction drops its on_commit callbacks: then start a new batch. ``==``, not ``is``:
    # a bound method is a new object at every attribute access, equal when self and function are.
    if pending is None or not any(entry[1] == pending.flush for entry in connection.run_on_commit):
        pending = _state.pending = _Pending()
        transaction.on_commit(pending.flush)
    pending.ids.setdefault(label, []).append(str(object_id))


class _Pending:
    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = {}

    def flush(self) -> None:
        if getattr(_state, "pending", None) is self:
            _state.pending = None
        for label, ids in self.ids.items():
            send_later(label, ids)
