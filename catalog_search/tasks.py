"""Celery tasks. Payloads are ids only; every task is idempotent and safe to run twice.

- ``process_objects(label, ids)``: index or remove those objects (outbox.process).
- ``sweep()``: periodic (Celery beat): re-enqueue outbox rows nobody picked up (broker was down,
  worker died), drive a model switch (switch.py), and keep the query-expansion vocabulary current
  (indexing/vocabulary.py, with QUERY_EXPANSION on) and the query fields' values (indexing/values.py).
- ``purge_analytics()``: periodic (daily is enough): delete searches and interactions older than
  ``ANALYTICS_RETENTION_DAYS`` (analytics/purge.py).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError, InterfaceError

from catalog_search.analytics import purge
from catalog_search.indexing import outbox, switch, values, vocabulary
from catalog_search.indexing.enqueue import PROCESS_TASK, enqueue
from catalog_search.registry import get_index_by_label, get_indexes

logger = logging.getLogger(__name__)

TRANSIENT = (DatabaseError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(
    name=PROCESS_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def process_objects(label: str, object_ids: list[str]) -> dict:
    index = get_index_by_label(label)
    if index is None:
        logger.warning("catalog_search: %s is not registered; dropping %d ids", label, len(object_ids))
        return {}
    report = outbox.process(index, object_ids)
    for object_id, reason in report.failed.items():
        logger.warning("catalog_search: %s %s indexed without image: %s", label, object_id, reason)
    return {
        "indexed": len(report.indexed),
        "removed": len(report.removed),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "superseded": len(report.superseded),
    }


@shared_task(name="catalog_search.sweep", ignore_result=True)
def sweep() -> dict:
    queued = 0
    for index in get_indexes():
        ids = outbox.stale_ids(index)
        if ids and enqueue(index.label, ids):
            outbox.mark_enqueued(index, ids)
            queued += len(ids)
    return {
        "queued": queued,
        "switch": switch.advance(),
        "vocabulary": vocabulary.refresh(),
        "values": values.refresh(get_indexes()),
    }


@shared_task(name="catalog_search.purge_analytics", ignore_result=True)
def purge_analytics() -> dict:
    return purge.purge()
