"""The indexing pipeline with a real Redis broker and a real Celery worker subprocess:
save -> trigger -> outbox -> task -> encode -> store."""

from __future__ import annotations

import base64
import json
import threading
import time
from decimal import Decimal

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings

import catalog_search
from catalog_search.encoding.encoders import get_encoder
from catalog_search.indexing import enqueue
from catalog_search.indexing.documents import build_doc
from catalog_search.models import Document, Embedding, OutboxEntry
from catalog_search.models import Encoder as EncoderRow
from catalog_search.registry import get_index
from demo_project.shop.models import Product
from tests.conftest import COLORS, png_bytes
from tests.test_bm25 import _stored_stats_match_postings
from tests.tiny_models import build_tiny_clip
from tests.worker import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COLOR_NAMES = list(COLORS)


def new_product(i: int, *, image: bytes | None = None, title: str | None = None) -> Product:
    color = COLOR_NAMES[i % len(COLOR_NAMES)]
    product = Product(
        title=title or f"{color.title()} canvas bag model{i}",
        description="everyday bag",
        category="bags",
        brand="Acme",
        color=color,
        price=Decimal("20.00"),
    )
    product.image.save(f"w{i}.png", ContentFile(image or png_bytes(COLORS[color], seed=i)), save=False)
    product.save()
    return product


def all_done(expected: int):
    def check() -> bool:
        return (
            not OutboxEntry.objects.exists()
            and Document.objects.count() == expected
            and Embedding.objects.count() == expected
        )

    return check


@pytest.fixture
def fresh_broker():
    from demo_project.celery import app

    app.control.purge()
    enqueue.reset()
    yield
    enqueue.reset()


@pytest.fixture
def worker(fresh_broker):
    w = Worker().start()
    yield w
    w.stop()


def _queued_tasks() -> list[list[str]]:
    """The id batches of the indexing tasks waiting on the real broker (no worker is consuming)."""
    from demo_project.celery import app

    assert enqueue.drain()  # the background sender has sent what the commits handed it
    with app.connection_for_write() as conn:
        messages = conn.default_channel.client.lrange(app.conf.task_default_queue, 0, -1)
    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0][1] for m in reversed(messages)]  # LPUSHed


def test_one_transaction_queues_one_batch_per_index_batch_size(fresh_broker):
    from demo_project.celery import app

    with transaction.atomic():
        products = [
            Product.objects.create(title=f"Batch bag {i}", category="bags", brand="Acme", price=1) for i in range(201)
        ]
    batches = _queued_tasks()
    assert [len(b) for b in batches] == [64, 64, 64, 9]  # INDEX_BATCH_SIZE 64, not 201 single-object tasks
    assert sorted(int(i) for b in batches for i in b) == sorted(p.pk for p in products)
    app.control.purge()
    with transaction.atomic():  # a rolled-back savepoint drops its callback; the next save starts a batch
        try:
            with transaction.atomic():
                Product.objects.create(title="Rolled back", category="bags", brand="Acme", price=1)
                raise RuntimeError
        except RuntimeError:
            pass
        kept = [Product.objects.create(title=f"Kept {i}", category="bags", brand="Acme", price=1) for i in range(3)]
    assert _queued_tasks() == [[str(p.pk) for p in kept]]


def test_created_products_are_indexed_by_the_worker(worker):
    for i in range(100):  # autocommit: one small task per save
        new_product(i)
    with transaction.atomic():  # one transaction: one batched enqueue on commit
        for i in range(100, 200):
            new_product(i)
    wait_for(all_done(200), timeout=120, message=f"200 products indexed\n{worker.output()}")
    assert Embedding.objects.filter(image__isnull=False).count() == 200
    hits = catalog_search.search(q="model137", mode="bm25")
    assert [h.object.title for h in hits] == [Product.objects.get(title__endswith="model137").title]
    photo = Product.objects.get(title__endswith="model42")
    with photo.image.open("rb") as fh:
        assert catalog_search.search(image=fh.read()).results[0].object == photo


def test_updates_during_a_full_rebuild_end_indexed_with_latest_content(worker):
    with transaction.atomic():
        products = [new_product(i) for i in range(200)]
    wait_for(all_done(200), timeout=120, message="initial indexing")
    call_command("catalog_search", "reindex", "--all", "--no-wait")
    changed = products[::4]  # 50 products, updated while the rebuild runs
    for round_ in range(3):
        for p in changed:
            p.title = f"{p.color} leather tote edition{p.pk}x{round_}"
            p.save()
    wait_for(all_done(200), timeout=120, message=f"rebuild finished\n{worker.output()}")
    index = get_index(Product)
    encoder = get_encoder()
    for p in changed:
        p.refresh_from_db()
        assert [h.id for h in catalog_search.search(q=f"edition{p.pk}x2", mode="bm25")] == [p.pk]
        assert catalog_search.search(q=f"edition{p.pk}x1", mode="bm25").results == []
        document = Document.objects.get(object_id=str(p.pk))
        assert document.content_hash == build_doc(index, p, with_image=False).content_hash
        stored = np.asarray(Embedding.objects.get(document=document).text, dtype=np.float32)
        np.testing.assert_allclose(stored, encoder.encode_texts([index.get_text(p)])[0], atol=1e-5)
    _stored_stats_match_postings(index.content_type.pk)


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(fresh_broker):
    first = Worker().start()
    try:
        with override_settings(CATALOG_SEARCH={**_settings(), "INDEX_BATCH_SIZE": 300}), transaction.atomic():
            for i in range(300):  # one task of 300 ids: long enough to be caught mid-batch
                new_product(i)
        wait_for(
            lambda: OutboxEntry.objects.filter(claimed_until__isnull=False).exists(),
            timeout=60,
            interval=0.005,
            message="the worker to claim the batch",
        )
        first.kill()
        killed = time.monotonic()
    finally:
        first.stop()
    at_kill = Document.objects.count()
    assert at_kill < 300, "the batch finished before the kill: not a mid-batch kill"
    assert OutboxEntry.objects.filter(claimed_until__isnull=False).exists()
    second = Worker().start()
    try:
        # Taken over once the dead worker's lease (3 s here, no longer renewed) ends and the sweep (1 s)
        # sends it again: seconds, not a lease that must outlast any batch (300 s before the heartbeat).
        wait_for(lambda: Document.objects.count() > at_kill, timeout=60, message="the second worker to take over")
        took_over = time.monotonic() - killed
        wait_for(all_done(300), timeout=120, message=f"recovery after SIGKILL\n{second.output()}")
    finally:
        second.stop()
    assert took_over < 30, f"taken over {took_over:.0f} s after the kill"
    assert Document.objects.values("object_id").distinct().count() == 300
    _stored_stats_match_postings(get_index(Product).content_type.pk)


def test_broker_down_saves_succeed_and_the_sweep_catches_up(fresh_broker):
    from tests.settings import REDIS

    REDIS.stop()
    try:
        started = time.monotonic()
        for i in range(20):
            new_product(i)
        assert time.monotonic() - started < 30  # saves never hang on the broker
        assert OutboxEntry.objects.count() == 20
        with pytest.raises(CommandError, match="No Celery broker is reachable"):
            call_command("catalog_search", "reindex", "--all")
    finally:
        REDIS.start()
    w = Worker().start()
    try:
        wait_for(all_done(20), timeout=120, message=f"sweep after the broker returned\n{w.output()}")
    finally:
        w.stop()


def test_a_hanging_broker_never_holds_up_a_save(fresh_broker):
    """Redis stops answering (CLIENT PAUSE) for 4 s: each save still returns at once (its enqueue waits in
    the background sender, not in the request), and every change is indexed once the broker answers."""
    import redis

    from tests.settings import REDIS

    redis.Redis.from_url(REDIS.url).execute_command("CLIENT", "PAUSE", 4000, "ALL")
    slowest = 0.0
    for i in range(30):  # autocommit: each save enqueues on its own
        started = time.monotonic()
        new_product(i)
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 0.5, f"a save waited {slowest:.2f} s"  # before: the first one waited for the broker
    w = Worker().start()
    try:
        wait_for(all_done(30), timeout=120, message=f"indexed after the broker answered again\n{w.output()}")
    finally:
        w.stop()


def test_corrupt_image_is_marked_failed_and_the_rest_of_the_batch_indexed(worker):
    with transaction.atomic():
        for i in range(10):
            new_product(i)
        broken = new_product(10, image=b"\x89PNG\r\n\x1a\n truncated garbage")
    wait_for(all_done(11), timeout=60, message="batch indexed")
    document = Document.objects.get(object_id=str(broken.pk))
    assert document.error.startswith(f"image {broken.image.name}: ")
    assert "truncated" in document.error.lower() or "could not be read" in document.error
    assert Embedding.objects.filter(image__isnull=False).count() == 10
    from catalog_search.status import model_status

    status = model_status(get_index(Product))
    assert status.failed == 1 and status.failures[0]["object_id"] == str(broken.pk)


def test_model_switch_builds_beside_the_old_index_and_switches_atomically(fresh_broker, tmp_path):
    old = Worker().start()
    try:
        with transaction.atomic():
            for i in range(120):
                new_product(i)
        wait_for(all_done(120), timeout=120, message="indexing with the first model")
    finally:
        old.stop()
    first = EncoderRow.objects.get(state="active")
    second_path = str(build_tiny_clip(tmp_path / "tiny-clip-v2", seed=1))

    answers, errors, stop = [], [], threading.Event()

    def search_continuously() -> None:
        from django.db import connections

        try:
            while not stop.is_set():
                try:
                    results = catalog_search.search(q="canvas bag", k=10)
                    answers.append((EncoderRow.objects.get(state="active").identity, len(results)))
                except Exception as exc:  # any failure while switching is a test failure
                    errors.append(repr(exc))
                time.sleep(0.05)
        finally:
            connections.close_all()

    searcher = threading.Thread(target=search_continuously)
    searcher.start()
    new = Worker(model=second_path).start()
    try:
        second = wait_for(
            lambda: EncoderRow.objects.filter(state="active").exclude(pk=first.pk).first(),
            timeout=120,
            message=f"the switch\n{new.output()}",
        )
        wait_for(lambda: not EncoderRow.objects.filter(pk=first.pk).exists(), timeout=30, message="cleanup")
        wait_for(
            lambda: any(identity == second.identity for identity, _ in answers),
            timeout=60,
            message="a search answered with the new encoder",
        )
    finally:
        stop.set()
        searcher.join(30)
        new.stop()
    assert errors == []
    identities = [identity for identity, _ in answers]
    assert first.identity in identities and second.identity in identities
    assert all(n == 10 for _, n in answers)
    assert Embedding.objects.filter(encoder=second).count() == 120
    assert not Embedding.objects.exclude(encoder=second).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE %s", [f"%\\_e{first.pk}"])
        assert cursor.fetchall() == []


def test_status_and_pending_command(fresh_broker, capsys):
    for i in range(5):
        new_product(i)
    call_command("catalog_search", "reindex", "--pending", "--sync")
    assert not OutboxEntry.objects.exists() and Document.objects.count() == 5
    call_command("catalog_search", "status")
    out = capsys.readouterr().out
    assert "shop.product" in out and "[active]" in out


def _settings() -> dict:
    from django.conf import settings

    return dict(settings.CATALOG_SEARCH)
