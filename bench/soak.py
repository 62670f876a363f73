"""Soak: a bounded number of mixed requests against the demo as ``scripts/demo.sh`` serves it (gunicorn with
threads, demo_project/gunicorn.conf.py), while shop staff edit products and the Celery worker is killed
and restarted; then every edit must be in the index.

    python bench/soak.py --products 500 --requests 5000 --clients 16

Steps: a throwaway embedded PostgreSQL, a private Redis broker and a temp var folder; the demo's own
encoder (demo_project/encoder); seed products of the demo catalog and index them synchronously; serve
with the demo's gunicorn configuration; a Celery worker with beat. Warm-up requests, then the soak:
``--requests`` requests from ``--clients`` keep-alive clients (80% text searches, half of them filtered,
all with facets; 20% photo searches), while one thread saves ``--edits`` product title changes in small
transactions and, a third of the way in, the worker is SIGKILLed and started again. Reported: status
counts (anything but 2xx and documented 429s is an error), client p50/p95 per kind, PostgreSQL backends
and the server's resident memory after warm-up and after the soak, and whether every edit was indexed
(searchable by its new word, its stored hash current). Writes the "Soak" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as ``python bench/soak.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    add_doc_arguments,
    bench_env,
    fmt,
    machine_facts,
    note_text,
    percentile,
    publish,
    section_header,
    shown_command,
    start_postgres,
    versions,
)
from bench.load import (
    Request,
    Sample,
    catalog_specs,
    index_products,
    photo_requests,
    seed_products,
    send,
    text_requests,
)
from tests.services import RedisServer, free_port

HEADING = "## Soak: mixed traffic, staff edits and a killed worker (bench/soak.py)"


def backends() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def rss_mib(root: int) -> float:
    """Resident memory of ``root`` and its children (gunicorn's master and workers), MiB."""
    pids = [root, *map(int, Path(f"/proc/{root}/task/{root}/children").read_text().split())]
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    return total / 1024


class Served:
    """The demo's gunicorn on a free port."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "demo_project.wsgi", "-c", "demo_project/gunicorn.conf.py"],
            cwd=ROOT,
            env={**os.environ, **env, "DEMO_BIND": f"127.0.0.1:{self.port}"},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", "/api/search/?q=ready")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"gunicorn did not answer; see {log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "demo_project",
            "worker",
            "-B",
            "--pool=solo",
            "--loglevel=INFO",
            "--schedule",
            str(log.with_suffix(".beat")),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def drive(port: int, requests: list[Request], clients: int) -> tuple[list[Sample], float]:
    """Send every request once, from ``clients`` keep-alive clients taking the next one in turn."""
    lock, position, samples = threading.Lock(), [0], []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if position[0] >= len(requests):
                    break
                req = requests[position[0]]
                position[0] += 1
            started = time.perf_counter()
            try:
                status, body, closing = send(conn, req)
                error = "" if 200 <= status < 300 else body[:120].decode(errors="replace")
            except (OSError, http.client.HTTPException) as exc:
                status, error, closing = 0, type(exc).__name__, True
            with lock:
                samples.append(Sample(req.kind, time.perf_counter() - started, status, error=error))
            if closing:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, time.perf_counter() - started


def edit_products(count: int, seconds: float, marks: dict[int, str]) -> None:
    """Staff edits: ``count`` title changes over about ``seconds``, five per transaction."""
    from django.db import connections, transaction

    from demo_project.shop.models import Product

    ids = list(Product.objects.order_by("?").values_list("pk", flat=True)[:count])
    for start in range(0, len(ids), 5):
        with transaction.atomic():
            for pk in ids[start : start + 5]:
                marks[pk] = f"soakedit{pk}x"
                product = Product.objects.get(pk=pk)
                product.title = f"{product.title} {marks[pk]}"
                product.save()
        time.sleep(seconds / max(len(ids) / 5, 1))
    connections.close_all()


def all_edits_indexed(marks: dict[int, str], timeout: float) -> tuple[bool, float, int]:
    """Wait until the outbox is empty; then (every edit found by its word, seconds waited, stale ones)."""
    import catalog_search
    from catalog_search.indexing.documents import build_doc
    from catalog_search.models import Document, OutboxEntry
    from catalog_search.registry import get_index
    from demo_project.shop.models import Product

    started = time.monotonic()
    while OutboxEntry.objects.exists() and time.monotonic() - started < timeout:
        time.sleep(1)
    waited = time.monotonic() - started
    index = get_index(Product)
    stale = 0
    for pk, word in marks.items():
        hits = [h.id for h in catalog_search.search(q=word, mode="bm25", k=5)]
        document = Document.objects.filter(object_id=str(pk)).first()
        current = (
            document is not None
            and document.content_hash == build_doc(index, Product.objects.get(pk=pk), with_image=False).content_hash
        )
        stale += not (hits == [pk] and current)
    return stale == 0, waited, stale


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    add_doc_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    tmp = Path(tempfile.mkdtemp(prefix="catalog-search-soak-"))
    atexit.register(shutil.rmtree, tmp, True)
    redis = RedisServer()
    redis.start()
    database_url = start_postgres(tmp / "pgdata", throwaway=True)
    env = bench_env(
        database_url,
        tmp / "var",
        ROOT / "demo_project" / "encoder",
        BENCH_CELERY_BROKER_URL=redis.url,
        CATALOG_SEARCH_SWEEP_SECONDS="5",
    )
    os.environ.update(env)
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    call_command("migrate", verbosity=0)
    print(f"==> Seeding and indexing {args.products} products", file=sys.stderr)
    seed_products(catalog_specs(args.products, args.seed))
    index_products()
    connections.close_all()
    rng = random.Random(args.seed)
    mix = text_requests(int(args.requests * 0.8), rng) + photo_requests(args.requests - int(args.requests * 0.8), rng)
    rng.shuffle(mix)
    warm = text_requests(int(args.warmup * 0.8), rng) + photo_requests(args.warmup - int(args.warmup * 0.8), rng)

    print("==> Serving (demo_project/gunicorn.conf.py) and a Celery worker with beat", file=sys.stderr)
    server = Served(env, tmp / "gunicorn.log")
    worker = start_worker(env, tmp / "worker.log")
    atexit.register(lambda: worker.poll() is None and worker.kill())
    drive(server.port, warm, args.clients)
    before = {"backends": backends(), "rss": rss_mib(server.process.pid)}
    marks: dict[int, str] = {}
    editor = threading.Thread(target=edit_products, args=(args.edits, 60.0, marks), daemon=True)

    def kill_and_restart() -> None:
        nonlocal worker
        while len(marks) < args.edits // 3:
            time.sleep(0.1)
        worker.kill()  # SIGKILL mid-work
        worker.wait()
        time.sleep(2)
        worker = start_worker(env, tmp / "worker.log")

    killer = threading.Thread(target=kill_and_restart, daemon=True)
    series: list[tuple[float, int, float]] = []  # seconds into the soak, backends, server RSS MiB
    done = threading.Event()

    def sample() -> None:
        from django.db import connections

        started = time.monotonic()
        while not done.wait(10):
            series.append((time.monotonic() - started, backends(), rss_mib(server.process.pid)))
        connections.close_all()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    print(
        f"==> Soak: {len(mix)} requests from {args.clients} clients, {args.edits} edits, a worker kill", file=sys.stderr
    )
    editor.start()
    killer.start()
    samples, wall = drive(server.port, mix, args.clients)
    done.set()
    sampler.join()
    editor.join()
    killer.join()
    after = {"backends": backends(), "rss": rss_mib(server.process.pid)}
    ok, waited, stale = all_edits_indexed(marks, timeout=300)
    server.stop()
    worker.terminate()
    worker.wait(30)
    redis.stop()
    lines = render(args, facts, samples, wall, before, after, (ok, waited, stale, len(marks)), series)
    publish(lines, note_text(args.note, args.note_file), args.doc, HEADING, write=not args.no_doc)
    return 0 if ok and not errors(samples) else 1


def errors(samples: list[Sample]) -> Counter:
    return Counter(f"{s.status or s.error}" for s in samples if not (200 <= s.status < 300 or s.status == 429))


def render(args, facts, samples, wall, before, after, edits, series) -> list[str]:
    ok, waited, stale, edited = edits
    statuses = Counter(s.status for s in samples)
    rows = []
    for kind in ("text", "photo", "all"):
        ms = [s.seconds * 1000 for s in samples if kind in ("all", s.kind)]
        rows.append(
            f"| {kind} | {len(ms)} | {fmt(percentile(ms, 50))} | {fmt(percentile(ms, 95))} | {fmt(max(ms) if ms else None)} |"
        )
    return [
        *section_header(HEADING, shown_command("soak.py", None), facts, versions(["gunicorn", "celery"]), "one run."),
        f"- **Setup**: {args.products} demo-catalog products indexed with the demo encoder; served by "
        "`demo_project/gunicorn.conf.py` (2 workers x 4 threads, gthread), bench settings (DEBUG off, throttling "
        "off, `CONN_MAX_AGE` 60, `PARALLEL_RETRIEVAL` on); one Celery worker (solo pool) with beat; "
        f"{args.warmup} warm-up requests before the soak.",
        "",
        f"{len(samples)} requests in {wall:.0f} s ({len(samples) / wall:.1f} req/s) from {args.clients} clients; "
        f"status counts: {dict(sorted(statuses.items()))}; errors (not 2xx or 429): {dict(errors(samples)) or 0}.",
        "",
        "| requests | n | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"PostgreSQL backends (every client of the database: the server, the worker, beat) after warm-up "
        f"{before['backends']}, after the soak {after['backends']}; server resident memory (master + workers) "
        f"{before['rss']:.0f} MiB -> {after['rss']:.0f} MiB. Every 10 s during the soak (s: backends, MiB): "
        + ", ".join(f"{t:.0f}: {b}, {m:.0f}" for t, b, m in series)
        + ".",
        "",
        f"Staff edits: {edited} saved during the soak (5 per transaction) while the worker was SIGKILLed after a "
        f"third of them and started again 2 s later; the outbox was empty {waited:.0f} s after the soak ended; "
        f"edits not searchable by their new word or with a stale stored hash: {stale}"
        + (" (every edit indexed)." if ok else "."),
    ]


if __name__ == "__main__":
    sys.exit(main())
