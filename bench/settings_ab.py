"""Two values of ``CATALOG_SEARCH`` settings side by side: the same searches, alternating A and B per query.

    python bench/settings_ab.py --products 100000 --a '{"PARALLEL_RETRIEVAL": 0}' --b '{"PARALLEL_RETRIEVAL": 2}'

In one process, on a database from ``bench/scale_data.py``: ``catalog_search.search()`` for the latency
benchmark's kind of queries (hybrid, two filters, facets, ``k`` 20), each asked with settings A and with
settings B one right after the other (which goes first alternates), so both see the same machine load;
the query vectors are injected (no encoding, as with a warm query cache), once as the random-weight model
embeds the text and once catalog-like (see bench/search_latency.py). Unless ``--different`` says the
settings change the answer (e.g. ``FACETS_OVER``), A and B must return the same results, scores and
facet counts. Reported: p50 / p95 of each, and the median of the per-query ratio A / B (how many times
faster B is). On this shared machine only such same-run ratios are comparable; absolute milliseconds move
20-30% between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from urllib.parse import parse_qs, urlparse

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ab_table,
    add_doc_arguments,
    fmt,
    machine_facts,
    note_text,
    percentile,
    publish,
    section_header,
    setup_django,
    shown_command,
    side_by_side,
    versions,
)
from bench.scale_data import ScaleSpec, ensure_loaded, start
from bench.search_latency import catalog_vectors, make_queries, model_vectors


@contextlib.contextmanager
def _using(settings: dict, vectors: dict) -> Iterator[None]:
    """``settings`` merged into CATALOG_SEARCH, and the query vectors of ``vectors`` (text -> vector)."""
    from django.conf import settings as django_settings
    from django.test import override_settings

    from catalog_search.retrieval import query_cache

    real = query_cache.text_vector
    query_cache.text_vector = lambda encoder, q: vectors[q]
    try:
        with override_settings(CATALOG_SEARCH={**django_settings.CATALOG_SEARCH, **settings}):
            yield
    finally:
        query_cache.text_vector = real


def _ask(path: str) -> tuple[float, tuple]:
    """(ms, answer) of one search of the API query string ``path``."""
    import catalog_search

    params = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(urlparse(path).query).items()}
    text = params.pop("q")
    started = time.perf_counter()
    results = catalog_search.search(q=text, filters=params, k=20)
    ms = (time.perf_counter() - started) * 1000
    return ms, ([(hit.id, round(hit.score, 9)) for hit in results], results.facets)


def _search(path: str, settings: dict, vectors: dict) -> tuple[float, tuple]:
    with _using(settings, vectors):
        return _ask(path)


def _load(paths: list[str], settings: dict, vectors: dict, clients: int, seconds: float) -> tuple[float, list[float]]:
    """(searches per second, latencies ms) of ``clients`` threads searching at once for ``seconds``, as
    the threads of one web process would (each with its own connection)."""
    from django.db import connection

    done: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop:
                ms, _ = _ask(rng.choice(paths))
                with lock:
                    done.append(ms)
        finally:
            connection.close()

    with _using(settings, vectors):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    return len(done) / elapsed, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--a", type=json.loads, required=True, help="CATALOG_SEARCH settings A, as JSON")
    parser.add_argument("--b", type=json.loads, required=True, help="CATALOG_SEARCH settings B, as JSON")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="times each query is asked with A and with B")
    parser.add_argument("--different", action="store_true", help="A and B may answer differently")
    parser.add_argument("--clients", type=int, default=0, help="also: this many threads searching at once")
    parser.add_argument("--seconds", type=float, default=15, help="per block of the concurrent measurement")
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("settings_ab.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    setup_django(start(spec))

    label = " vs ".join(", ".join(f"{k} {v!r}" for k, v in s.items()) or "library defaults" for s in (args.a, args.b))
    heading = f"## Side by side: {label} (bench/settings_ab.py)"
    paths = make_queries(args.queries, random.Random(args.seed + 2), set())
    texts = [parse_qs(urlparse(p).query)["q"][0] for p in paths]
    kinds = {
        "random-model": dict(zip(texts, model_vectors(paths), strict=True)),
        "catalog-like": dict(zip(texts, catalog_vectors(paths, seed=0), strict=True)),
    }
    rows = []
    for kind, vectors in kinds.items():
        for path in paths[:8]:  # warm-up: caches and code paths of both settings
            _search(path, args.a, vectors)
            _search(path, args.b, vectors)
        measured = side_by_side(paths, args.rounds, lambda side, path, v=vectors: _search(path, getattr(args, side), v))
        if measured.different and not args.different:
            raise SystemExit(f"A and B answer {paths[min(measured.different)]} differently")
        row = (kind, *measured.row())
        rows.append(row)
        print(f"{kind}: A p50 {row[1]:.1f} p95 {row[2]:.1f} | B p50 {row[3]:.1f} p95 {row[4]:.1f} | A/B {row[5]:.2f}x")

    loaded_rows = []
    if args.clients:  # throughput: blocks of A and B alternating, catalog-like vectors
        vectors = kinds["catalog-like"]
        runs: dict[str, list[tuple[float, list[float]]]] = {"a": [], "b": []}
        for block in range(2 * args.rounds):
            side = "ab"[block % 2] if block % 4 < 2 else "ba"[block % 2]
            runs[side].append(_load(paths, getattr(args, side), vectors, args.clients, args.seconds))
        for side in "ab":
            rates = [rate for rate, _ in runs[side]]
            latencies = [ms for _, done in runs[side] for ms in done]
            loaded_rows.append((side.upper(), median(rates), percentile(latencies, 50), percentile(latencies, 95)))
            print(
                f"{args.clients} clients, {side.upper()}: {median(rates):.1f} searches/s, p50 {loaded_rows[-1][2]:.0f} ms"
            )

    lines = section_header(
        heading,
        command,
        facts,
        versions(),
        f"{args.queries} queries x {args.rounds} rounds per kind of query vector, A and B alternating per query",
    )
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`).",
        f"- **A**: `{json.dumps(args.a)}`; **B**: `{json.dumps(args.b)}`; every other setting as in the demo shop.",
        "- **Searches**: `catalog_search.search()` in process (no HTTP), hybrid, `k` 20, facets on, half "
        "`category` + `price__lte`, half `in_stock=true` + `price__gte`; query vectors injected (no encoding). "
        + ("A and B may answer differently." if args.different else "A and B returned the same answers."),
        "",
        *ab_table(rows),
    ]
    if loaded_rows:
        lines += [
            "",
            f"Under load: {args.clients} threads of this process searching at once (catalog-like vectors, random "
            f"queries of the same set), {2 * args.rounds} blocks of {args.seconds:g} s, A and B alternating "
            "(ABBA); searches per second = the median over a setting's blocks, latencies pooled.",
            "",
            "| settings | searches/s | p50 ms | p95 ms |",
            "|---|---:|---:|---:|",
            *(f"| {side} | {rate:.1f} | {fmt(p50)} | {fmt(p95)} |" for side, rate, p50, p95 in loaded_rows),
        ]
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
