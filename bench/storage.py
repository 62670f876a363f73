"""Memory of the running processes and disk size of the index, with ``vector`` versus ``halfvec`` storage.

    python bench/storage.py --products 100000 --runs 3

1. **Processes** (real ones, on a throwaway database with a few hundred demo products and their rendered
   photos): a gunicorn web worker after its warm-up (model loaded, one text and one photo search, then
   a few API requests), and a Celery worker (``--pool=solo``, real Redis broker on a private db number)
   after it indexed every product (encode photos and texts, write), read from /proc/<pid>/status
   (VmRSS now, VmHWM = peak). Median over ``--runs`` fresh processes.
2. **Sizes** of the ``bench/scale_data.py`` database (``--products``, default 100k): every catalog_search
   table (heap, TOAST) and index, scaled to "per 100k products".
3. **vector vs halfvec**: the embeddings copied into two bench tables with typed columns, ``vector(512)``
   and ``halfvec(512)``, the image column stored in the row as in production (migration 0004), each with
   the production HNSW index (same m, ef_construction, cosine ops) on the image column, built in the same
   run (times are a side-by-side ratio); then recall@10 of an
   unfiltered HNSW search on each against the exact float32 answer (NumPy), and query time.
   The production table is left untouched (its columns are untyped ``vector`` with per-encoder partial
   expression indexes, see docs/architecture.md); the copies are dropped at the end.
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
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    Server,
    ServerConfig,
    add_doc_arguments,
    bench_env,
    machine_facts,
    note_text,
    proc_memory,
    section_header,
    setup_django,
    shown_command,
    start_postgres,
    use_database,
    versions,
    write_section,
)
from bench.scale_data import MODEL_DIR, ScaleSpec, ensure_loaded, query_vectors, start

HEADING = "## Memory and index size, vector vs halfvec (bench/storage.py)"
REDIS_URL = "redis://127.0.0.1:6379/6"
TABLES = (
    "catalog_search_document",
    "catalog_search_posting",
    "catalog_search_termstat",
    "catalog_search_embedding",
    "shop_product",
)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


# 1. Processes ---------------------------------------------------------------------------------------


def seed_photos(count: int, seed: int) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from demo_project.shop.catalog import generate, photo_jpeg
    from demo_project.shop.models import Product

    rows = []
    for spec in generate(count, seed):
        name = default_storage.save(f"products/{spec.image_name}", ContentFile(photo_jpeg(spec)))
        rows.append(Product(**spec.model_fields(), image=name))
    Product.objects.bulk_create(rows)


def redis_ok() -> bool:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return True
    except redis.RedisError:
        return False


def celery_run(env: dict[str, str], log: Path) -> dict[str, Any]:
    """Start a solo Celery worker, queue every product, wait until the outbox is empty; its memory."""
    import redis
    from django.db import connection

    from catalog_search.indexing.enqueue import enqueue
    from catalog_search.models import OutboxEntry
    from catalog_search.registry import get_index
    from demo_project.shop.models import Product

    redis.Redis.from_url(REDIS_URL).flushdb()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM catalog_search_embedding; DELETE FROM catalog_search_posting")
        cursor.execute("DELETE FROM catalog_search_document; DELETE FROM catalog_search_termstat")
        cursor.execute("DELETE FROM catalog_search_corpusstat")
    index = get_index(Product)
    ids = list(Product.objects.values_list("pk", flat=True))
    OutboxEntry.objects.all().delete()
    from catalog_search.indexing import outbox

    outbox.mark(index, ids, force=True)
    command = [sys.executable, "-m", "celery", "-A", "demo_project", "worker", "--pool=solo", "--loglevel=WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    atexit.register(_kill, process)
    try:
        time.sleep(2)
        idle = proc_memory(process.pid)
        start = time.perf_counter()
        assert enqueue(index.label, ids), "could not enqueue"
        while OutboxEntry.objects.exists():
            if process.poll() is not None:
                raise RuntimeError(f"celery worker exited:\n{log.read_text()[-3000:]}")
            if time.perf_counter() - start > 900:
                raise RuntimeError("indexing did not finish in 900 s")
            time.sleep(0.5)
        seconds = time.perf_counter() - start
        return {"idle": idle, "after": proc_memory(process.pid), "seconds": seconds, "indexed": len(ids)}
    finally:
        _kill(process)


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def web_run(env: dict[str, str], log: Path) -> dict[str, Any]:
    """One gunicorn worker: memory after warm-up, and after 20 text and 5 photo API requests."""
    import http.client

    from demo_project.shop.photos import customer_photo

    server = Server(ServerConfig(1, 4, 1), env, log)
    server.start()
    try:
        (worker,) = server.worker_pids()
        warm = proc_memory(worker)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        for i in range(20):
            conn.request("GET", f"/api/search/?q=red+leather+bag+{i}&category=bags&price__lte=200")
            assert conn.getresponse().read() and True
        boundary = "benchstorage"
        for i, slug in enumerate(["handbag", "sneaker", "t-shirt", "backpack", "dress"]):
            try:
                photo = customer_photo(slug, i, "red")
            except KeyError:
                continue
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                + photo
                + f"\r\n--{boundary}--\r\n".encode()
            )
            conn.request(
                "POST", "/api/search/image/", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            )
            conn.getresponse().read()
        conn.close()
        return {"warm": warm, "after": proc_memory(worker), "master": proc_memory(server.process.pid)}
    finally:
        server.stop()


# 2. + 3. Sizes and halfvec ----------------------------------------------------------------------------


def relation_sizes() -> list[dict[str, Any]]:
    """Heap, TOAST and every index of the catalog_search tables (and the shop's products)."""
    from django.db import connection

    out = []
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                "SELECT pg_relation_size(c.oid), coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), "
                "pg_total_relation_size(c.oid), c.reltuples::bigint FROM pg_class c WHERE c.relname = %s",
                [table],
            )
            heap, toast, total, rows = cursor.fetchone()
            cursor.execute(
                "SELECT i.relname, pg_relation_size(i.oid), am.amname FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_am am ON am.oid = i.relam WHERE t.relname = %s ORDER BY 2 DESC",
                [table],
            )
            indexes = [{"name": n, "bytes": b, "method": m} for n, b, m in cursor.fetchall()]
            out.append({"table": table, "heap": heap, "toast": toast, "total": total, "rows": rows, "indexes": indexes})
    return out


def build_copies(encoder_id: int, m: int, ef_construction: int) -> dict[str, dict[str, float]]:
    """Typed copies of the embeddings (vector(512), halfvec(512)) with an HNSW index on the image column."""
    from django.db import connection

    out: dict[str, dict[str, float]] = {}
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '2GB'; SET max_parallel_maintenance_workers = 1")
        for kind in ("vector", "halfvec"):
            table = f"bench_embedding_{kind}"
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            select = (
                f"SELECT document_id, encoder_id, content_type_id, object_id, image::vector(512)::{kind}(512) AS image, "
                f"text::vector(512)::{kind}(512) AS text FROM catalog_search_embedding WHERE encoder_id = {int(encoder_id)}"
            )
            # The production layout (migration 0004): the image vector in the row, the text vector in TOAST.
            cursor.execute(f"CREATE TABLE {table} AS {select} WITH NO DATA")
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN image SET STORAGE MAIN")
            cursor.execute(f"INSERT INTO {table} {select}")
            cursor.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (document_id, encoder_id)")
            cursor.execute(f"CREATE INDEX {table}_obj ON {table} (encoder_id, content_type_id, object_id)")
            cursor.execute(f"VACUUM ANALYZE {table}")
            start = time.perf_counter()
            cursor.execute(
                f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (image {kind}_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction})"
            )
            out[kind] = {"build_s": time.perf_counter() - start}
            cursor.execute(
                "SELECT pg_relation_size(%s), coalesce(pg_total_relation_size(NULLIF(reltoastrelid, 0)), 0), "
                "pg_relation_size(%s) FROM pg_class WHERE relname = %s",
                [table, f"{table}_hnsw", table],
            )
            heap, toast, hnsw = cursor.fetchone()
            out[kind] |= {"heap": heap, "toast": toast, "hnsw": hnsw}
    return out


def drop_copies() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for kind in ("vector", "halfvec"):
            cursor.execute(f"DROP TABLE IF EXISTS bench_embedding_{kind}")


def copy_recall(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, ef_search: int) -> dict[str, dict]:
    """Recall@10 and time of an unfiltered HNSW top-10 on each copy vs the exact float32 answer."""
    from django.db import connection, transaction

    from catalog_search.sql import vector_literal

    truth = [set(ids[np.argsort(-(vectors @ q))[:10]].tolist()) for q in queries]
    out: dict[str, dict] = {k: {"recall": [], "ms": []} for k in ("vector", "halfvec")}
    for i, q in enumerate(queries):
        literal = vector_literal(q)
        for kind in ("vector", "halfvec") if i % 2 == 0 else ("halfvec", "vector"):  # interleaved
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
                start = time.perf_counter()
                cursor.execute(
                    f"SELECT object_id FROM bench_embedding_{kind} ORDER BY image <=> %s::{kind}(512) LIMIT 10",
                    [literal],
                )
                got = {int(r[0]) for r in cursor.fetchall()}
                out[kind]["ms"].append((time.perf_counter() - start) * 1000)
            out[kind]["recall"].append(len(got & truth[i]) / 10)
    return out


# Main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000, help="catalog for the sizes (scale_data)")
    parser.add_argument("--process-products", type=int, default=256, help="products the Celery worker indexes")
    parser.add_argument("--runs", type=int, default=3, help="fresh web and worker processes measured")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("storage.py", argv)
    args.note = note_text(args.note, args.note_file)
    facts = machine_facts()
    if not redis_ok():
        raise SystemExit(f"No Redis at {REDIS_URL}: the Celery worker needs a broker (see DESIGN.md for the command).")

    # Sizes first, from the scale database (Django points at it in this process).
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    scale_env = start(spec)
    setup_django({**scale_env, "BENCH_CELERY_BROKER_URL": REDIS_URL})  # this process enqueues the tasks
    from bench.ann_recall import load_vectors
    from catalog_search import conf

    software = versions(["torch", "transformers", "gunicorn", "celery"])
    print("==> Table and index sizes", file=sys.stderr)
    sizes = relation_sizes()
    print("==> vector and halfvec copies with HNSW", file=sys.stderr)
    m, efc = conf.settings().HNSW_M, conf.settings().HNSW_EF_CONSTRUCTION
    ef_search = max(conf.settings().HNSW_EF_SEARCH, conf.settings().CANDIDATES)
    try:
        copies = build_copies(loaded["encoder_id"], m, efc)
        ids, vectors = load_vectors(loaded["encoder_id"])
        queries, _ = query_vectors(args.queries)
        recall = copy_recall(queries, ids, vectors, ef_search)
    finally:
        drop_copies()
    for kind in ("vector", "halfvec"):
        r = recall[kind]
        print(
            f"{kind:<8} heap {mib(copies[kind]['heap'])} MiB toast {mib(copies[kind]['toast'])} MiB "
            f"hnsw {mib(copies[kind]['hnsw'])} MiB build {copies[kind]['build_s']:.0f} s "
            f"recall@10 {np.mean(r['recall']):.3f} ms p50 {median(r['ms']):.2f}"
        )

    # Processes: a throwaway database with real photos, same var folder (the photos must be found).
    tmp = Path(tempfile.mkdtemp(prefix="catalog-search-storage-"))
    atexit.register(shutil.rmtree, tmp, True)
    url = start_postgres(tmp / "pgdata", throwaway=True)
    env = bench_env(url, Path(scale_env["CATALOG_SEARCH_VAR"]), MODEL_DIR, BENCH_CELERY_BROKER_URL=REDIS_URL)
    use_database(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"==> {args.process_products} products with photos in a throwaway database", file=sys.stderr)
    seed_photos(args.process_products, args.seed)
    workers, webs = [], []
    for run in range(1, args.runs + 1):
        print(f"==> Run {run}: Celery worker indexes them, then a gunicorn worker", file=sys.stderr)
        workers.append(celery_run(env, tmp / f"celery-{run}.log"))
        webs.append(web_run(env, tmp / f"gunicorn-{run}.log"))
        print(f"  worker {workers[-1]}\n  web {webs[-1]}", file=sys.stderr)
    media = Path(scale_env["CATALOG_SEARCH_VAR"]) / "media"
    shutil.rmtree(media, ignore_errors=True)
    text = render(args, command, facts, software, loaded, sizes, copies, recall, workers, webs, ef_search, m, efc)
    print(text)
    if not args.no_doc:
        write_section(args.doc, text, HEADING)
        print(f"Wrote '{HEADING}' in {args.doc}")
    return 0


def _parameters() -> int:
    return int((MODEL_DIR / "parameters.txt").read_text())


def _med(values: list[dict], *path: str) -> float:
    out = []
    for v in values:
        for key in path:
            v = v[key]
        out.append(float(v))
    return median(out)


def render(args, command, facts, software, loaded, sizes, copies, recall, workers, webs, ef_search, m, efc) -> str:
    n = loaded["products"]
    per = 100_000 / n
    lines = section_header(
        HEADING,
        command,
        facts,
        software,
        f"process memory: median of {args.runs} fresh processes; sizes: one database; recall: one HNSW build per "
        "copy (parallel builds differ from run to run, see *halfvec* below).",
    )
    lines += [
        "",
        "### Processes (resident memory, MiB)",
        "",
        "| process | after start / warm-up | after work | peak (VmHWM) |",
        "|---|---:|---:|---:|",
        f"| gunicorn web worker (gthread, 4 threads, torch 1 thread): warm-up = model loaded + one text and one "
        f"photo search; work = 20 text + 5 photo API requests | {_med(webs, 'warm', 'VmRSS') / 1024:,.0f} "
        f"| {_med(webs, 'after', 'VmRSS') / 1024:,.0f} | {_med(webs, 'after', 'VmHWM') / 1024:,.0f} |",
        f"| gunicorn master | | {_med(webs, 'master', 'VmRSS') / 1024:,.0f} | {_med(webs, 'master', 'VmHWM') / 1024:,.0f} |",
        f"| Celery worker (`--pool=solo`): start = idle, model not loaded yet; work = indexed {workers[0]['indexed']} "
        f"products with photos (batches of INDEX_BATCH_SIZE, encode + write; {_med(workers, 'seconds'):.0f} s) "
        f"| {_med(workers, 'idle', 'VmRSS') / 1024:,.0f} | {_med(workers, 'after', 'VmRSS') / 1024:,.0f} "
        f"| {_med(workers, 'after', 'VmHWM') / 1024:,.0f} |",
        "",
        f"The model is the random-weight CLIP ViT-B/32 ({_parameters() / 1e6:.0f} M parameters, float32 = "
        f"{_parameters() * 4 / 2**20:,.0f} MiB), which dominates both processes; every process that encodes holds "
        "its own copy.",
        "",
        f"### Disk per 100k products ({n:,}-product database from `bench/scale_data.py`, scaled by {per:g})",
        "",
        "| relation | rows | heap MiB | TOAST MiB | indexes |",
        "|---|---:|---:|---:|---|",
    ]
    total = 0
    for t in sizes:
        total += t["total"]
        idx = "; ".join(f"`{i['name']}` ({i['method']}) {mib(i['bytes'] * per)} MiB" for i in t["indexes"])
        lines.append(
            f"| `{t['table']}` | {t['rows'] * per:,.0f} | {mib(t['heap'] * per)} | {mib(t['toast'] * per)} | {idx} |"
        )
    lines += [
        "",
        f"Total (tables + TOAST + indexes): {mib(total * per)} MiB per 100k products.",
        "",
        "### vector(512) vs halfvec(512), image column, same run",
        "",
        "| storage | heap MiB | TOAST MiB | HNSW index MiB | HNSW build s | recall@10 (unfiltered, "
        f"ef_search {ef_search}) | top-10 query ms p50 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("vector", "halfvec"):
        c, r = copies[kind], recall[kind]
        lines.append(
            f"| {kind} | {mib(c['heap'] * per)} | {mib(c['toast'] * per)} | {mib(c['hnsw'] * per)} | "
            f"{c['build_s']:.0f} | {np.mean(r['recall']):.3f} | {median(r['ms']):.2f} |"
        )
    v, h = copies["vector"], copies["halfvec"]
    lines += [
        "",
        f"Ratios halfvec / vector: HNSW index {h['hnsw'] / v['hnsw']:.2f}x, heap + TOAST "
        f"{(h['heap'] + h['toast']) / (v['heap'] + v['toast']):.2f}x, build time {h['build_s'] / v['build_s']:.2f}x, "
        f"query time {median(recall['halfvec']['ms']) / median(recall['vector']['ms']):.2f}x. Both tables hold the "
        f"image and text columns; HNSW m = {m}, ef_construction = {efc}; the exact answer is NumPy float32 over all "
        f"{n:,} stored image vectors, for {args.queries} synthetic text-side queries.",
    ]
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
