"""Outbox processing in-process (the worker's code path without the worker): versions, skips,
per-object failures, and indexing without a loadable model."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import override_settings

import catalog_search
from catalog_search.encoding.encoders import clear_cache
from catalog_search.indexing import outbox, switch
from catalog_search.models import Document, Embedding, IndexRun, OutboxEntry
from demo_project.shop.models import Product

pytestmark = pytest.mark.django_db


def pending(product: Product) -> OutboxEntry:
    return OutboxEntry.objects.get(object_id=str(product.pk))


def test_process_indexes_and_empties_the_outbox(make_product, product_index, encoder):
    products = [make_product(f"Linen shirt {i}") for i in range(3)]
    report = outbox.process(product_index, [str(p.pk) for p in products])
    assert sorted(report.indexed) == sorted(str(p.pk) for p in products)
    assert not OutboxEntry.objects.exists()
    assert Embedding.objects.count() == 3
    # Running the same task again (a redelivery) is a no-op.
    assert outbox.process(product_index, [str(p.pk) for p in products]).indexed == []


def test_unchanged_content_is_not_reencoded(make_product, product_index, encoder):
    product = make_product("Denim jacket")
    outbox.process(product_index, [str(product.pk)])
    product.price = 99  # not a text or image field: nothing to encode
    product.save()
    report = outbox.process(product_index, [str(product.pk)])
    assert report.skipped == [str(product.pk)] and report.indexed == []
    product.title = "Denim jacket, washed"
    product.save()
    assert outbox.process(product_index, [str(product.pk)]).indexed == [str(product.pk)]
    outbox.mark(product_index, [product.pk], force=True)  # a reindex re-encodes even unchanged content
    assert outbox.process(product_index, [str(product.pk)]).indexed == [str(product.pk)]


def test_a_change_during_encoding_wins_over_the_older_result(make_product, product_index, encoder):
    product = make_product("Velvet sofa")
    claims = outbox.claim(product_index, [str(product.pk)])
    # The product changes after the worker read its version but before it writes.
    Product.objects.filter(pk=product.pk).update(title="Velvet armchair")
    report = outbox.ProcessReport()
    superseded = outbox._process_round(product_index, claims, report)
    assert superseded == [str(product.pk)] and report.indexed == []
    assert not Document.objects.filter(object_id=str(product.pk)).exists()  # the stale result was dropped
    # process() re-reads and indexes the latest content.
    outbox.release(product_index, superseded)
    outbox.process(product_index, [str(product.pk)])
    assert [h.object.title for h in catalog_search.search(q="armchair", mode="bm25")] == ["Velvet armchair"]
    assert catalog_search.search(q="sofa", mode="bm25").results == []


def test_claimed_rows_are_not_processed_twice(make_product, product_index, encoder):
    product = make_product("Silk scarf")
    assert len(outbox.claim(product_index, [str(product.pk)])) == 1
    assert outbox.claim(product_index, [str(product.pk)]) == []  # another worker holds the lease
    assert outbox.process(product_index, [str(product.pk)]).indexed == []
    with connection.cursor() as cursor:  # the lease ends (that worker died)
        cursor.execute("UPDATE catalog_search_outbox SET claimed_until = now() - interval '1 second'")
    assert outbox.process(product_index, [str(product.pk)]).indexed == [str(product.pk)]


def test_a_bug_in_one_object_never_blocks_the_batch(make_product, product_index, encoder, monkeypatch):
    good, bad = make_product("Cotton tote"), make_product("Cursed tote")
    original = type(product_index).get_text

    def get_text(self, instance):
        if instance.pk == bad.pk:
            raise ValueError("boom")
        return original(self, instance)

    monkeypatch.setattr(type(product_index), "get_text", get_text)  # a fault in user code
    report = outbox.process(product_index, [str(good.pk), str(bad.pk)])
    assert report.indexed == [str(good.pk)] and report.broken == {str(bad.pk): "ValueError: boom"}
    entry = pending(bad)
    assert entry.last_error == "ValueError: boom" and entry.claimed_until is None and entry.attempts == 1


def test_deleted_and_unpublished_objects_are_removed(make_product, product_index, encoder):
    product = make_product("Wool socks")
    outbox.process(product_index, [str(product.pk)])
    pk = product.pk
    product.delete()
    assert pending(Product(pk=pk)).action == "delete"
    assert outbox.process(product_index, [str(pk)]).removed == [str(pk)]
    assert not Document.objects.exists() and not Embedding.objects.exists()


def test_without_a_loadable_model_keyword_search_still_works(make_product, product_index, encoder, tmp_path):
    product = make_product("Leather gloves")
    with override_settings(CATALOG_SEARCH={"MODEL": str(tmp_path / "missing-model")}):
        clear_cache()
        outbox.process(product_index, [str(product.pk)])
    clear_cache()
    assert Document.objects.count() == 1 and not Embedding.objects.exists()
    assert [h.id for h in catalog_search.search(q="gloves", mode="bm25")] == [product.pk]
    results = catalog_search.search(q="gloves")  # hybrid degrades to keywords, and says so
    assert [h.id for h in results] == [product.pk] and "vector signal unavailable" in results.warnings[0]
    # Once the model loads again, the sweep queues the documents that lack vectors.
    assert switch.advance() == "queued 1 documents without vectors"
    assert switch.advance() == "none"  # already queued: not queued twice
    outbox.process(product_index, [str(product.pk)])
    assert Embedding.objects.count() == 1


def test_the_workers_processing_of_saved_changes_is_the_last_run(make_product, product_index, encoder):
    from catalog_search.status import model_status

    assert model_status(product_index).last_run is None
    products = [make_product(f"Wool hat {i}") for i in range(3)]
    outbox.process(product_index, [str(p.pk) for p in products[:2]])
    run = model_status(product_index).last_run
    assert run["kind"] == "updates" and run["requested_by"] == "worker"
    assert run["done"] == 2 and run["finished_at"] is None  # one object still waits
    outbox.process(product_index, [str(products[2].pk)])
    run = model_status(product_index).last_run
    assert run["done"] == 3 and run["finished_at"] is not None and run["seconds"] >= 0
    products[0].title = "Wool beanie"
    products[0].save()
    outbox.process(product_index, [str(products[0].pk)])
    runs = list(IndexRun.objects.order_by("started_at").values_list("kind", "done"))
    assert runs == [("updates", 3), ("updates", 1)]  # a later change opens a new run


@pytest.mark.django_db(transaction=True)
def test_a_batch_longer_than_its_lease_keeps_it_while_it_works(make_product, product_index, encoder):
    """The heartbeat renews the lease (here 1 s) while a batch works; once it stops, the lease ends on time."""
    product = make_product("Slow batch tote", image=None)
    with override_settings(CATALOG_SEARCH={"MODEL": encoder.name, "OUTBOX_LEASE_SECONDS": 1}):
        assert len(outbox.claim(product_index, [str(product.pk)])) == 1
        with outbox.lease_renewed(product_index, [str(product.pk)]):
            time.sleep(2.5)  # two and a half leases
            assert outbox.claim(product_index, [str(product.pk)]) == []  # another worker cannot take it
        time.sleep(1.5)
        assert len(outbox.claim(product_index, [str(product.pk)])) == 1  # the lease ended without the heartbeat


def test_a_worker_that_lost_its_lease_never_writes_over_a_newer_change(
    make_product, product_index, encoder, monkeypatch
):
    """Worker A is frozen past its lease (a VM pause, swapped out: its heartbeat stops too) after reading the
    object; worker B takes the row over and finishes it, and the object is saved again, which puts a new
    outbox row in. When A wakes its result is older than that row: it must not be written (nor the row
    deleted), whatever version numbers the new row starts from."""
    product = make_product("Frozen lamp", image=None)
    pk = str(product.pk)
    real_encode = outbox.encode_docs
    woken = []

    def encode_after_a_freeze(docs, row, enc):
        if not woken:  # A has read "Frozen lamp"; while it is frozen:
            woken.append(True)
            with connection.cursor() as cursor:  # its lease ends
                cursor.execute("UPDATE catalog_search_outbox SET claimed_until = now() - interval '1 second'")
            assert outbox.process(product_index, [pk]).indexed == [pk]  # B takes over and finishes
            assert not OutboxEntry.objects.exists()
            Product.objects.filter(pk=product.pk).update(title="Thawed lantern")  # saved again: a new row
        return real_encode(docs, row, enc)

    monkeypatch.setattr(outbox, "encode_docs", encode_after_a_freeze)
    outbox.process(product_index, [pk])  # A
    outbox.process(product_index, [pk])  # the new row's own task (nothing left to do if A handled it)
    assert not OutboxEntry.objects.exists()
    assert [h.id for h in catalog_search.search(q="lantern", mode="bm25")] == [product.pk]
    assert catalog_search.search(q="lamp", mode="bm25").results == []
