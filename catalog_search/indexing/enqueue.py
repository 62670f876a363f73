"""Enqueueing indexing work on the Celery broker without ever blocking or failing a save.

If the broker is unreachable, enqueueing gives up at once and stays quiet for
``BROKER_RETRY_AFTER_SECONDS``: the outbox row is already committed and the sweep enqueues it later.
"""

from __future__ import annotations

import logging
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


def enqueue_on_commit(label: str, object_id: object) -> None:
    """Enqueue after the current transaction commits, one batch per transaction and model."""
    from django.db import connection, transaction

    if not connection.in_atomic_block:
        transaction.on_commit(lambda: enqueue(label, [object_id]))  # autocommit: runs right away
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
            enqueue(label, ids)
