"""HNSW build time and memory, ``vector`` vs ``halfvec``, at 100k and 1M products, side by side in one run.

    python bench/hnsw_build.py --sizes 100000 1000000 --real 100000

Per catalog size (``bench/scale_data.py`` databases: synthetic CLIP-like 512-d vectors, every product
with its own; above ``--real`` the products are SQL copies with vectors of their own), the image vectors
are copied into two typed tables, ``vector(512)`` and ``halfvec(512)`` (stored in the row, as production
stores the image column), and on each the production HNSW index is built (same m, ef_construction,
cosine ops; ``maintenance_work_mem`` of ``--memory``, one parallel worker as on 2 cores), each build on
a fresh connection. Reported per build: wall time, index size, the building backend's peak resident
memory (VmHWM from /proc: the graph lives in shared memory the leader touches as it inserts), and
pgvector's notices (it says when the graph outgrows ``maintenance_work_mem`` and the build goes on disk).
Then recall@10 of an unfiltered top 10 at the production ``ef_search`` against the exact float32 answer
(NumPy over every stored image vector) and the query time, the two kinds interleaved query by query.

The production table keeps untyped ``vector`` columns with per-encoder partial expression indexes over
both the image and the text column (docs/architecture.md); building those is what ``scale_data.py``
records in ``loaded.json`` (both columns, under whatever else ran then), shown here beside the copies.
The copies are dropped at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    add_doc_arguments,
    machine_facts,
    note_text,
    publish,
    section_header,
    setup_django,
    shown_command,
    use_database,
    versions,
)
from bench.scale_data import ScaleSpec, backend_peak_kib, ensure_loaded, query_vectors, start
from bench.storage import copy_recall, drop_copies, mib

HEADING = "## HNSW build at 100k and 1M, vector vs halfvec (bench/hnsw_build.py)"
KINDS = ("vector", "halfvec")


def copy_table(kind: str, encoder_id: int) -> None:
    """``bench_embedding_<kind>``: object id and typed image vector of every product, stored in the row."""
    from django.db import connection

    table = f"bench_embedding_{kind}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TABLE {table} (object_id varchar(64) NOT NULL, image {kind}(512) NOT NULL)")
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN image SET STORAGE MAIN")
        cursor.execute(
            f"INSERT INTO {table} SELECT object_id, image::vector(512)::{kind}(512) FROM catalog_search_embedding "
            f"WHERE encoder_id = {int(encoder_id)} AND image IS NOT NULL"
        )
        cursor.execute(f"VACUUM ANALYZE {table}")


def build_index(kind: str, *, m: int, ef_construction: int, memory: str) -> dict[str, Any]:
    """Build the HNSW index of ``bench_embedding_<kind>`` on a fresh backend; time, size, peak, notices."""
    from django.db import connection

    table = f"bench_embedding_{kind}"
    connection.close()  # a new backend: its VmHWM is this build's alone
    connection.ensure_connection()
    notices: list[str] = []
    handler = lambda diag: notices.append(diag.message_primary or "")  # noqa: E731
    connection.connection.add_notice_handler(handler)
    with connection.cursor() as cursor:
        cursor.execute(f"SET maintenance_work_mem = '{memory}'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        started = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (image {kind}_cosine_ops) "
            f"WITH (m = {m}, ef_construction = {ef_construction})"
        )
        seconds = time.perf_counter() - started
        peak = backend_peak_kib(cursor)
        cursor.execute(
            "SELECT pg_relation_size(%s), pg_relation_size(%s), (SELECT count(*) FROM " + table + ")",
            [table, f"{table}_hnsw"],
        )
        heap, hnsw, rows = cursor.fetchone()
    connection.connection.remove_notice_handler(handler)
    return {"build_s": seconds, "peak_kib": peak, "heap": heap, "hnsw": hnsw, "rows": rows, "notices": notices}


def measure_size(spec: ScaleSpec, *, memory: str, queries: int) -> dict[str, Any]:
    """Both kinds' builds and their recall on one catalog size."""
    from bench.ann_recall import load_vectors
    from catalog_search import conf

    loaded = ensure_loaded(spec)
    use_database(start(spec)["DATABASE_URL"])
    settings = conf.settings()
    m, efc = settings.HNSW_M, settings.HNSW_EF_CONSTRUCTION
    ef_search = max(settings.HNSW_EF_SEARCH, settings.CANDIDATES)
    builds = {}
    try:
        for kind in KINDS:
            print(f"==> {spec.products:,}: {kind} copy and HNSW build", file=sys.stderr, flush=True)
            copy_table(kind, loaded["encoder_id"])
            builds[kind] = build_index(kind, m=m, ef_construction=efc, memory=memory)
            print(f"    {builds[kind]}", file=sys.stderr, flush=True)
        ids, vectors = load_vectors(loaded["encoder_id"])
        recall = copy_recall(query_vectors(queries)[0], ids, vectors, ef_search)
    finally:
        drop_copies()
    return {"loaded": loaded, "builds": builds, "recall": recall, "m": m, "efc": efc, "ef_search": ef_search}


def render(args, command: str, facts, software: str, results: dict[int, dict[str, Any]]) -> list[str]:
    lines = section_header(
        HEADING,
        command,
        facts,
        software,
        f"one build per kind and size, sizes in the order given; `maintenance_work_mem` {args.memory}, one "
        f"parallel maintenance worker; recall over {args.queries} synthetic text-side queries.",
    )
    lines += [
        "",
        "| products | kind | build s | index MiB | per vector B | backend peak MiB | notices | recall@10 | query ms p50 |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for size, r in results.items():
        for kind in KINDS:
            b, q = r["builds"][kind], r["recall"][kind]
            lines.append(
                f"| {size:,} | {kind} | {b['build_s']:.0f} | {mib(b['hnsw'])} | {b['hnsw'] / b['rows']:,.0f} "
                f"| {b['peak_kib'] / 1024:,.0f} | {'; '.join(b['notices']) or 'none'} | {np.mean(q['recall']):.3f} "
                f"| {median(q['ms']):.2f} |"
            )
    lines += [
        "",
        "| products | halfvec / vector: build time | index size | query time | production build, both columns (loaded.json) |",
    ]
    lines += ["|---:|---:|---:|---:|---|"]
    for size, r in results.items():
        v, h = r["builds"]["vector"], r["builds"]["halfvec"]
        qv, qh = median(r["recall"]["vector"]["ms"]), median(r["recall"]["halfvec"]["ms"])
        prod = r["loaded"].get("hnsw") or {}
        shown = f"{r['loaded']['timings'].get('hnsw_s', '-')} s"
        if prod:
            shown += f", `maintenance_work_mem` {prod['maintenance_work_mem']}, peak {prod['backend_peak_mib']:,} MiB"
        lines.append(
            f"| {size:,} | {h['build_s'] / v['build_s']:.2f}x | {h['hnsw'] / v['hnsw']:.2f}x | {qh / qv:.2f}x | {shown} |"
        )
    first = next(iter(results.values()))
    lines += [
        "",
        f"HNSW m = {first['m']}, ef_construction = {first['efc']}, ef_search = {first['ef_search']}; the exact "
        "answer is NumPy float32 over every stored image vector.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--real", type=int, default=100_000, help="products through the real path (scale_data)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory", default="8GB", help="maintenance_work_mem of the builds")
    parser.add_argument("--queries", type=int, default=200)
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("hnsw_build.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    specs = {size: ScaleSpec(size, args.seed, args.real) for size in args.sizes}
    for spec in specs.values():
        ensure_loaded(spec)
    setup_django(start(specs[args.sizes[0]]))
    software = versions()
    results = {size: measure_size(spec, memory=args.memory, queries=args.queries) for size, spec in specs.items()}
    publish(render(args, command, facts, software, results), note, args.doc, HEADING, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
