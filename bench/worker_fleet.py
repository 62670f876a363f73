"""Worker fleets: reindex throughput (objects/s) with one and with two Celery worker processes, side by side.

    python bench/worker_fleet.py                          # 2,000 products with photos + 2,000 without, 3 rounds
    python bench/worker_fleet.py --products 300 --rounds 1 --no-doc   # a smoke run

One throwaway embedded PostgreSQL, a private Redis, the demo catalog (``--products`` products with their
photos and as many again without a photo) and the demo encoder (demo_project/encoder). Every fleet
configuration runs at once, each on a Redis queue of its own (``-Q``), so that nothing restarts between
measurements and idle fleets cost nothing; a measurement puts one lane's objects in the outbox with
``force`` (what ``reindex --all`` does), sends them to one fleet's queue in tasks of ``INDEX_BATCH_SIZE``
ids and times until the outbox holds none of them. Fleets and lanes alternate round by round, in rotating
order, so a noisy neighbour hits every configuration alike.

Fleets (all prefork, prefetch 1, late acknowledgement: the demo's Celery settings; the default ``--fleets``
runs the first five):

- ``1 process on 1 core``: ``taskset -c 0``, ``--concurrency 1``, torch 1 thread: the per-core figure;
- ``1 process``: ``--concurrency 1``, torch's default threads (one per core);
- ``2 processes``: two ``celery worker`` commands, ``--concurrency 1`` each, torch default threads;
- ``2 processes, 1 thread``: the same with ``OMP_NUM_THREADS=1`` (one torch thread per process);
- ``1 process, concurrency 2``: one ``celery worker --concurrency 2`` (two pool processes);
- ``1 process, concurrency 2, 1 torch thread each``: the same with ``OMP_NUM_THREADS=1``.

Lanes: ``photos`` (decode and resize the photo, encode image and text, write) and ``text only`` (products
without a photo: encode the text, write). Reported: objects/s (median of the rounds), per core (objects/s
divided by the cores the fleet may use), objects per CPU-second of the worker processes (user + system
time of the fleet's processes during the measurement: what an object costs wherever it runs), the
PostgreSQL server's CPU per object (what the primary pays for the writes), and the speed-up over one
process. Writes the "Worker fleets" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

if __package__ in (None, ""):  # run as ``python bench/worker_fleet.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    add_doc_arguments,
    bench_env,
    fmt,
    machine_facts,
    note_text,
    publish,
    section_header,
    shown_command,
    start_postgres,
    versions,
)
from tests.services import RedisServer

HEADING = "## Worker fleets: reindex throughput with 1 and 2 worker processes (bench/worker_fleet.py)"
TICKS = os.sysconf("SC_CLK_TCK")
PGDATA: list[Path] = []  # the benchmark database's data folder


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Fleet:
    """Some ``celery worker`` processes consuming one queue of their own."""

    key: str
    label: str
    processes: int  # celery worker commands
    concurrency: int  # pool processes each
    cores: int  # cores the fleet may use
    torch_threads: int | None = None
    pin: str | None = None  # taskset CPU list
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return f"fleet-{self.key}"

    def start(self, env: dict[str, str], logs: Path) -> None:
        child_env = {**os.environ, **env}
        if self.torch_threads:
            child_env |= {"OMP_NUM_THREADS": str(self.torch_threads), "MKL_NUM_THREADS": str(self.torch_threads)}
        for n in range(self.processes):
            command = [
                *(["taskset", "-c", self.pin] if self.pin else []),
                *(sys.executable, "-m", "celery", "-A", "demo_project", "worker", "-Q", self.queue),
                *("-n", f"{self.key}-{n}@%h", "--pool=prefork", f"--concurrency={self.concurrency}"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"),
            ]
            out = (logs / f"{self.key}-{n}.log").open("w")
            self.workers.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + 120
        for n, worker in enumerate(self.workers):
            path = logs / f"{self.key}-{n}.log"
            while "ready." not in path.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {self.key}-{n} did not start:\n{path.read_text()[-3000:]}")
                time.sleep(0.2)

    def pids(self) -> list[int]:
        """Every process of the fleet: the worker commands and their pool processes."""
        out = []
        for worker in self.workers:
            out.append(worker.pid)
            children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
            if children.exists():
                out += [int(p) for p in children.read_text().split()]
        return out

    def cpu_seconds(self) -> float:
        """User + system time of the fleet's processes so far (pool processes are long-lived)."""
        return sum(process_cpu(pid) for pid in self.pids())

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


FLEETS = {
    "1c": lambda cores: Fleet("1c", "1 process on 1 core", 1, 1, 1, torch_threads=1, pin="0"),
    "1p": lambda cores: Fleet("1p", "1 process", 1, 1, cores),
    "2p": lambda cores: Fleet("2p", "2 processes", 2, 1, cores),
    "2p1t": lambda cores: Fleet("2p1t", "2 processes, 1 torch thread each", 2, 1, cores, torch_threads=1),
    "1x2": lambda cores: Fleet("1x2", "1 process, concurrency 2", 1, 2, cores),
    "1x2t1": lambda cores: Fleet(
        "1x2t1", "1 process, concurrency 2, 1 torch thread each", 1, 2, cores, torch_threads=1
    ),
}


def seed(products: int, seed_value: int) -> dict[str, list[str]]:
    """``products`` demo products with photos and as many without; their ids by lane. The outbox rows the
    inserts left are dropped: each measurement queues its own."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from bench.load import catalog_specs
    from catalog_search.models import OutboxEntry
    from demo_project.shop.catalog import photo_jpeg
    from demo_project.shop.models import Product

    specs = catalog_specs(products, seed_value)
    rows = []
    for spec in specs:
        name = default_storage.save(f"products/{spec.image_name}", ContentFile(photo_jpeg(spec)))
        rows.append(Product(**spec.model_fields(), image=name))
    with_photo = Product.objects.bulk_create(rows, batch_size=500)
    without = Product.objects.bulk_create([Product(**s.model_fields()) for s in specs], batch_size=500)
    OutboxEntry.objects.all().delete()
    return {"photos": [str(p.pk) for p in with_photo], "text only": [str(p.pk) for p in without]}


def process_cpu(pid: int, *, reaped: bool = False) -> float:
    """User + system seconds of ``pid`` (with ``reaped``: plus those of its children that have exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / TICKS


def database_cpu(data_dir: Path) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster with its exited backends, and the live ones."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return process_cpu(postmaster, reaped=True) + sum(process_cpu(int(c)) for c in children)


def run_pass(fleet: Fleet, ids: list[str], batch: int, timeout: float = 900) -> tuple[float, float, float]:
    """Reindex ``ids`` on ``fleet``; (seconds until none is left in the outbox, fleet CPU-seconds, database
    CPU-seconds)."""
    from catalog_search.indexing import outbox
    from catalog_search.indexing.enqueue import PROCESS_TASK
    from catalog_search.registry import get_index
    from demo_project.celery import app
    from demo_project.shop.models import Product

    index = get_index(Product)
    outbox.mark(index, ids, force=True)
    cpu, db = fleet.cpu_seconds(), database_cpu(PGDATA[0])
    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        app.send_task(PROCESS_TASK, args=(index.label, ids[start : start + batch]), queue=fleet.queue)
    while outbox.pending_among(index, ids):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{fleet.label}: not done after {timeout} s")
        time.sleep(0.05)
    return time.perf_counter() - started, fleet.cpu_seconds() - cpu, database_cpu(PGDATA[0]) - db


def check_index(total: int) -> str:
    """Every object once, with one embedding, and the BM25 statistics equal to a recount."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM catalog_search_document), (SELECT count(DISTINCT object_id) FROM "
            "catalog_search_document), (SELECT count(*) FROM catalog_search_embedding), "
            "(SELECT count(*) FROM catalog_search_outbox)"
        )
        documents, distinct, embeddings, waiting = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM (SELECT p.term, count(*) AS n FROM catalog_search_posting p GROUP BY p.term) r "
            "FULL JOIN catalog_search_termstat t ON t.term = r.term WHERE t.df IS DISTINCT FROM r.n"
        )
        (df_off,) = cursor.fetchone()
        cursor.execute(
            "SELECT c.doc_count = (SELECT count(*) FROM catalog_search_document) AND abs(c.total_length - "
            "(SELECT sum(length) FROM catalog_search_document)) < 1e-6 FROM catalog_search_corpusstat c"
        )
        (corpus_ok,) = cursor.fetchone()
    ok = documents == distinct == embeddings == total and waiting == 0 and df_off == 0 and corpus_ok
    return (
        f"{documents} documents ({distinct} distinct objects), {embeddings} embeddings, {waiting} outbox rows, "
        f"{df_off} terms whose df differs from a recount, corpus statistics "
        f"{'equal' if corpus_ok else 'NOT equal'} to a recount: {'exact' if ok else 'NOT EXACT'}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=2000, help="products with photos (and as many without)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fleets", default="1c,1p,2p,2p1t,1x2", help=f"comma-separated, of {', '.join(FLEETS)}")
    parser.add_argument("--batch", type=int, default=64, help="ids per task (INDEX_BATCH_SIZE)")
    parser.add_argument("--seed", type=int, default=1)
    add_doc_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    cores = int(facts["nproc"])
    tmp = Path(tempfile.mkdtemp(prefix="catalog-search-fleet-"))
    atexit.register(shutil.rmtree, tmp, True)
    redis = RedisServer()
    redis.start()
    atexit.register(redis.stop)
    PGDATA.append(tmp / "pgdata")
    env = bench_env(
        start_postgres(PGDATA[0], throwaway=True),
        tmp / "var",
        ROOT / "demo_project" / "encoder",
        BENCH_CELERY_BROKER_URL=redis.url,
    )
    os.environ.update(env)
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0)
    log(f"==> Seeding {args.products} products with photos and {args.products} without")
    lanes = seed(args.products, args.seed)
    fleets = [FLEETS[key](cores) for key in args.fleets.split(",")]
    log(f"==> Starting {len(fleets)} fleets: " + ", ".join(f.label for f in fleets))
    for fleet in fleets:
        fleet.start(env, tmp)
    log("==> Warm-up: every fleet indexes both lanes once (models loaded in every pool process)")
    first_build = {}
    for fleet in fleets:
        for lane, ids in lanes.items():
            seconds, _, _ = run_pass(
                fleet, ids if fleet is fleets[0] else ids[: max(len(ids) // 4, 4 * args.batch)], args.batch
            )
            if fleet is fleets[0]:
                first_build[lane] = len(ids) / seconds
    seconds_of: dict[tuple[str, str], list[float]] = {}
    cpu_of: dict[tuple[str, str], list[float]] = {}
    db_of: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for lane, ids in lanes.items():
            order = fleets[round_ % len(fleets) :] + fleets[: round_ % len(fleets)]
            for fleet in order:
                seconds, cpu, db = run_pass(fleet, ids, args.batch)
                db_of.setdefault((fleet.key, lane), []).append(db)
                seconds_of.setdefault((fleet.key, lane), []).append(seconds)
                cpu_of.setdefault((fleet.key, lane), []).append(cpu)
                log(
                    f"  round {round_ + 1} {lane:9} {fleet.label:34} {len(ids) / seconds:7.1f} objects/s, cpu {cpu:.0f} s, database {db:.0f} s"
                )
    integrity = check_index(2 * args.products)
    software = versions(["celery", "torch"])
    load_after = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    connection.close()
    for fleet in fleets:
        fleet.stop()
    lines = render(args, facts, fleets, lanes, seconds_of, cpu_of, db_of, first_build, integrity, software, load_after)
    publish(lines, note_text(args.note, args.note_file), args.doc, HEADING, write=not args.no_doc)
    return 0 if integrity.endswith(": exact") else 1


def render(
    args, facts, fleets, lanes, seconds_of, cpu_of, db_of, first_build, integrity, software, load_after
) -> list[str]:
    rows = []
    for lane, ids in lanes.items():
        base = median(len(ids) / s for s in seconds_of[("1p", lane)]) if ("1p", lane) in seconds_of else None
        for fleet in fleets:
            rates = [len(ids) / s for s in seconds_of[(fleet.key, lane)]]
            rate = median(rates)
            per_cpu = median(len(ids) / c for c in cpu_of[(fleet.key, lane)] if c > 0)
            db_ms = median(1000 * d / len(ids) for d in db_of[(fleet.key, lane)])
            rows.append(
                f"| {lane} | {fleet.label} | {fleet.cores} | {rate:.1f} | {min(rates):.1f}-{max(rates):.1f} | "
                f"{rate / fleet.cores:.1f} | {per_cpu:.1f} | {db_ms:.1f} | {fmt(rate / base if base else None, 2)}x |"
            )
    return [
        *section_header(
            HEADING,
            shown_command("worker_fleet.py", None),
            facts,
            software,
            f"{args.rounds} rounds, fleets and lanes alternating in rotating order; medians of the rounds.",
        ),
        f"- **Catalog**: {args.products} demo-catalog products with their photos (JPEG, rendered by the demo "
        f"catalog) and the same {args.products} without a photo; the demo encoder (`demo_project/encoder`: "
        "MiniLM text tower, small CNN image tower), torch runtime.",
        f"- **Work**: each measurement marks one lane's {args.products} objects with `force` (as `reindex --all` "
        f"does) and sends them to one fleet's queue in tasks of {args.batch} ids; timed until the outbox holds "
        "none of them. Every fleet runs all the time on its own queue (`-Q fleet-<name>`), idle but for the "
        "measured one; PostgreSQL and Redis share the same cores. A warm-up pass per fleet first (the first "
        "fleet's was the index's first build: "
        + ", ".join(f"{lane} {rate:.1f} objects/s" for lane, rate in first_build.items())
        + ").",
        f"- **Load average** at the end: {load_after}.",
        "",
        "| lane | fleet | cores | objects/s | range over rounds | per core | objects per worker CPU-second "
        "| database CPU ms per object | vs 1 process |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"After the runs: {integrity}.",
    ]


if __name__ == "__main__":
    sys.exit(main())
