"""A fleet of workers: two real ``celery worker`` processes on the same Redis queue and database, given the
same objects more than once (the same batch sent twice, overlapping id ranges, a save's own task on top),
with objects changed and deleted while the batches are in flight, and one worker frozen past its lease
while the other does its batch again. Afterwards every object is in the index once, with its latest
content, and the BM25 statistics equal a recount from the documents and postings."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from celery import signature
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings

import catalog_search
from catalog_search.indexing.documents import build_doc
from catalog_search.indexing.enqueue import PROCESS_TASK
from catalog_search.models import Document, OutboxEntry
from catalog_search.registry import get_index
from demo_project.shop.models import Product
from tests.test_bm25 import _stored_stats_match_postings
from tests.test_pipeline import all_done as settled
from tests.test_pipeline import fresh_broker, new_product  # noqa: F401 (a fixture)
from tests.worker import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RESULT = re.compile(r"Task catalog_search\.process_objects\[[^\]]+\] succeeded in [\d.]+s: (\{[^}]*\})")


def send(label: str, ids: list[str]) -> None:
    """One ``process_objects`` task for exactly these ids (not split by INDEX_BATCH_SIZE)."""
    signature(PROCESS_TASK, args=(label, ids)).apply_async()


def results(worker: Worker) -> list[dict]:
    """What each of the worker's indexing tasks returned (from its log)."""
    return [eval(m) for m in RESULT.findall(worker.log.read_text(errors="replace"))]  # noqa: S307 (our own log)


def assert_index_exact(index, products: list[Product], gone: list[int]) -> None:
    """Each live product: one document with its current content hash, its postings once (one per term of the
    stored document), one embedding; nothing left of the deleted ones; statistics equal a recount."""
    ct = index.content_type.pk
    live = [str(p.pk) for p in products if p.pk not in gone]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT object_id, count(*) FROM catalog_search_document WHERE content_type_id = %s GROUP BY object_id",
            [ct],
        )
        documents = dict(cursor.fetchall())
        cursor.execute(
            "SELECT d.object_id, count(p.term), count(DISTINCT p.term), cardinality(d.terms) "
            "FROM catalog_search_document d LEFT JOIN catalog_search_posting p ON p.document_id = d.id "
            "WHERE d.content_type_id = %s GROUP BY d.id",
            [ct],
        )
        postings = {oid: (n, distinct, terms) for oid, n, distinct, terms in cursor.fetchall()}
        cursor.execute(
            "SELECT object_id, count(*) FROM catalog_search_embedding WHERE content_type_id = %s GROUP BY object_id",
            [ct],
        )
        embeddings = dict(cursor.fetchall())
        cursor.execute(
            "SELECT count(*) FROM catalog_search_posting WHERE object_id = ANY(%s)", [[str(g) for g in gone]]
        )
        (gone_postings,) = cursor.fetchone()
    assert documents == dict.fromkeys(live, 1)
    assert embeddings == dict.fromkeys(live, 1)
    assert all(n == distinct == terms > 0 for n, distinct, terms in postings.values()), postings
    assert gone_postings == 0
    stored = dict(Document.objects.filter(content_type_id=ct).values_list("object_id", "content_hash"))
    for product in Product.objects.filter(pk__in=[int(i) for i in live]):
        assert stored[str(product.pk)] == build_doc(index, product, with_image=False).content_hash, product.title
    _stored_stats_match_postings(ct)


def test_two_workers_given_overlapping_batches_write_each_object_once(fresh_broker):  # noqa: F811
    index = get_index(Product)
    first = Worker().start()  # with beat: exactly one in a fleet
    second = Worker(beat=False).start()
    try:
        with transaction.atomic():  # one transaction: its own batches of 64 on commit
            products = [new_product(i) for i in range(240)]
        ids = [str(p.pk) for p in products]
        for start in range(0, 240, 48):  # duplicate delivery: every batch again, twice, and shifted windows
            send(index.label, ids[start : start + 48])
            send(index.label, ids[start : start + 48])
            send(index.label, ids[max(start - 24, 0) : start + 72])
        send(index.label, ids)  # and all of it in one task
        # While those are in flight: 48 products change (one save each: a task of their own), some twice...
        for round_ in range(2):
            for p in products[::5]:
                p.title = f"{p.color.title()} fleet tote edition{p.pk}x{round_}"
                p.save()
        # ... 30 are deleted (the outbox rows become "delete"), and their ids are sent again.
        gone = [p.pk for p in products[1::8]]
        Product.objects.filter(pk__in=gone).delete()
        send(index.label, [str(g) for g in gone] + ids[:40])
        wait_for(
            settled(240 - len(gone)),
            timeout=180,
            message=f"the fleet to finish\n{first.output()}\n{second.output()}",
        )
        time.sleep(1)  # tasks still queued find nothing to do; let them run out
        wait_for(settled(240 - len(gone)), timeout=30, message="still settled")
    finally:
        first.stop()
        second.stop()
    done = {"first": results(first), "second": results(second)}
    for name, reports in done.items():  # both workers did part of the work...
        assert sum(r["indexed"] for r in reports) > 0, f"the {name} worker indexed nothing"
    everything = done["first"] + done["second"]
    # ... and many tasks found their objects taken or done already (claimed by the other, or finished).
    assert sum(1 for r in everything if not any(r.values())) >= 5, everything
    assert sum(r["removed"] for r in everything) == len(gone)
    assert_index_exact(index, products, gone)
    for p in products[::5]:
        if p.pk not in gone:
            assert [h.id for h in catalog_search.search(q=f"edition{p.pk}x1", mode="bm25")] == [p.pk]
            assert catalog_search.search(q=f"edition{p.pk}x0", mode="bm25").results == []


def test_a_worker_frozen_past_its_lease_while_the_other_redoes_its_batch(fresh_broker):  # noqa: F811
    """SIGSTOP (a paused VM, a swapped-out process: its heartbeat stops too) a worker in the middle of a batch
    of 300; the other worker takes the rows over once the lease (3 s) ends and does the whole batch again;
    then, while that one is paused in turn, some of the products are saved again. Woken up, the first worker
    finishes its old batch: it must not write what it read before those saves (nor drop their outbox rows).
    Before the outbox versions came from one sequence, a row inserted again started at version 1, the
    woken worker's claim matched it, and those products stayed indexed with their old titles."""
    index = get_index(Product)
    frozen = Worker(beat=False).start()
    try:
        warm = new_product(999)  # the worker loads its model on its first task: not during the batch
        wait_for(settled(1), timeout=60, message="the first worker's warm-up")
        batch = {**settings.CATALOG_SEARCH, "INDEX_BATCH_SIZE": 300}
        with override_settings(CATALOG_SEARCH=batch), transaction.atomic():  # one task of 300 ids on commit
            products = [new_product(i) for i in range(300)]
        wait_for(
            lambda: OutboxEntry.objects.filter(claimed_until__isnull=False).exists(),
            timeout=60,
            interval=0.005,
            message="the first worker to claim",
        )
        os.killpg(frozen.process.pid, signal.SIGSTOP)
        at_freeze = Document.objects.count() - 1
        taker = Worker().start()  # with beat: its sweep re-sends the rows once the lease has ended
        try:
            wait_for(settled(301), timeout=120, message=f"the other worker to redo the batch\n{taker.output()}")
            os.killpg(taker.process.pid, signal.SIGSTOP)
            changed = products[::6]
            for p in changed:  # saved again: new outbox rows, their tasks wait on the broker
                p.title = f"{p.color.title()} thawed tote edition{p.pk}"
                p.save()
            os.killpg(frozen.process.pid, signal.SIGCONT)
            wait_for(
                lambda: len(results(frozen)) > 1, timeout=120, message=f"the woken worker's batch\n{frozen.output()}"
            )
            os.killpg(taker.process.pid, signal.SIGCONT)
            wait_for(settled(301), timeout=60, message="settled after the wake-up")
        finally:
            os.killpg(taker.process.pid, signal.SIGCONT)
            taker.stop()
    finally:
        if frozen.process.poll() is None:
            os.killpg(frozen.process.pid, signal.SIGCONT)
        frozen.stop()
    assert at_freeze == 0, "the first worker wrote its batch before the freeze"
    assert_index_exact(index, [warm, *products], [])
    for p in changed:
        assert [h.id for h in catalog_search.search(q=f"edition{p.pk}", mode="bm25")] == [p.pk]
