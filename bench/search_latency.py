"""Latency of ``GET /api/search/`` (hybrid, two filters, facets) at 10k and 100k products, or 100k and 1M,
with the query embedding cached and uncached, through HTTP against gunicorn.

    python bench/search_latency.py --sizes 10000 100000 --runs 5 --queries 60
    python bench/search_latency.py --sizes 100000 1000000 --real 100000 --runs 3 --queries 40

One gunicorn per catalog size (databases from ``bench/scale_data.py``), both up at once; one client
sends requests one after the other (latency, not throughput). Every run draws fresh query strings
nobody asked before and, per state, sends all of them to one size, then to the other (the order
alternates by run):

1. *uncached*: the first time the query is asked (cache miss: the text is encoded by the random-weight
   ViT-B/32 and the embedding stored);
2. *cached*: the same queries again, after every one of them was asked once (cache hit: no encoding);
3. *cached, catalog-like*: other fresh queries whose embedding was written to the server's cache
   beforehand, made the way the synthetic stored vectors are (``scale_data.VectorModel``, text side)
   from what the query names: what a trained encoder would give, so the query's neighbours are the
   products it names. The random model's embedding points nowhere in particular, which for a filtered
   vector search is the worst case (few of its neighbours pass the filter).

The query-embedding cache is ``CATALOG_SEARCH["QUERY_CACHE"]`` (a Django cache alias) on a RedisCache at
127.0.0.1:6379/5, flushed before each run, one key prefix per server. Queries: catalog vocabulary
("crimson leather handbag"), half with ``category`` + ``price__lte``, half with ``in_stock=true`` +
``price__gte`` (a large matched set); facets are always computed. p50 / p95 per run, then the median
over runs; ratios are between sizes and cache states measured in the same runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from statistics import median
from urllib.parse import urlencode

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Server,
    ServerConfig,
    add_doc_arguments,
    fmt,
    machine_facts,
    note_text,
    percentile,
    publish,
    section_header,
    setup_django,
    shown_command,
    versions,
)
from bench.scale_data import ScaleSpec, ensure_loaded, start

# Targets (p50, p95 ms, cached) by the largest catalog of a run: the API's at 100k, issue #25's at 1M.
TARGETS = {100_000: (50, 100), 1_000_000: (60, 150)}


def short(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def heading(sizes: list[int]) -> str:
    """One section per set of sizes: the 10k/100k and the 100k/1M runs each keep theirs."""
    return f"## Search latency at {' and '.join(short(s) for s in sizes)} products (bench/search_latency.py)"


CACHE_URL = "redis://127.0.0.1:6379/5"
STATES = ("uncached", "cached", "cached, catalog-like")


QUERY_ROWS: dict[str, dict[str, str]] = {}  # path -> what the query names (category, type, color, ...)


def make_queries(n: int, rng: random.Random, seen: set[str]) -> list[str]:
    """``n`` distinct query strings (with their filters) never produced before in this process; what each
    names is kept in ``QUERY_ROWS`` (for its catalog-like vector)."""
    from demo_project.shop.artwork import TYPES
    from demo_project.shop.catalog import ADJECTIVES, BRANDS, MATERIALS
    from demo_project.shop.photos import COLORS

    out = []
    while len(out) < n:
        art = rng.choice(TYPES)
        family = rng.choice(list(COLORS))
        noun, color = rng.choice(art.terms), rng.choice(COLORS[family].terms)
        material, brand = rng.choice(MATERIALS[art.materials]), rng.choice(BRANDS).name
        shape = rng.randrange(4)
        q = [f"{color} {noun}", f"{color} {material} {noun}", f"{rng.choice(ADJECTIVES)} {color} {noun}"]
        q.append(f"{brand} {color} {noun}")
        q = q[shape]
        row = {"category": art.category, "type": art.slug, "color": family}
        row |= {"material": material} if shape == 1 else {"brand": brand} if shape == 3 else {}
        if len(out) % 2 == 0:
            params = {"q": q, "category": art.category, "price__lte": str(rng.choice([50, 100, 200, 500]))}
        else:
            params = {"q": q, "in_stock": "true", "price__gte": str(rng.choice([10, 20, 50]))}
        path = "/api/search/?" + urlencode(params)
        if q not in seen:
            seen.add(q)
            out.append(path)
            QUERY_ROWS[path] = row
    return out


def catalog_vectors(paths: list[str], seed: int) -> np.ndarray:
    """For each query, the text vector a trained encoder would give it: the stored vectors' own recipe
    (``scale_data.VectorModel``, text side) for what the query names, so it lands near those products."""
    from bench.scale_data import VectorModel

    return VectorModel(1).vectors([QUERY_ROWS[p] for p in paths], "text", np.random.default_rng([seed, 7]))


def model_vectors(paths: list[str]) -> np.ndarray:
    """The random-weight model's own embeddings of the queries (what an uncached search encodes)."""
    from urllib.parse import parse_qs, urlparse

    from catalog_search.encoding.active import active_encoder

    _, encoder = active_encoder()
    return encoder.encode_texts([parse_qs(urlparse(p).query)["q"][0] for p in paths])


def seed_cache(size: int, paths: list[str], vectors: np.ndarray, prefix: str | None = None) -> None:
    """Store ``vectors`` as the cached embeddings of the queries of ``paths`` in the server's cache (key
    prefix ``prefix``, default ``latency-<size>``), under the key the server computes
    (``query_cache.key_for``), so its next search for them is a cache hit."""
    from urllib.parse import parse_qs, urlparse

    from django.core.cache.backends.redis import RedisCache

    from catalog_search.encoding.active import active_encoder
    from catalog_search.retrieval import query_cache

    _, encoder = active_encoder()
    cache = RedisCache(CACHE_URL, {"KEY_PREFIX": prefix or f"latency-{size}"})
    for path, vector in zip(paths, vectors, strict=True):
        text = parse_qs(urlparse(path).query)["q"][0]
        normalized = query_cache.normalize_query(text, query_cache._ignores_case(encoder))
        cache.set(query_cache.key_for(encoder, normalized), vector.astype(np.float32).tobytes(), timeout=None)


def get_json(conn: http.client.HTTPConnection, path: str) -> tuple[float, dict]:
    """(client ms, decoded body) of one GET; raises on a non-200."""
    start = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - start) * 1000
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {body[:300]!r}")
    return elapsed, json.loads(body)


def ask(conn: http.client.HTTPConnection, path: str) -> tuple[float, float]:
    """(client ms, server took_ms) of one GET; raises on a non-200."""
    elapsed, data = get_json(conn, path)
    return elapsed, float(data["took_ms"])


def breakdown(paths: list[str], qvecs: np.ndarray) -> dict[str, float]:
    """Median in-process ms of each part of the search for ``paths`` (the API's query strings) with query
    vectors ``qvecs``, on the database Django points at, called as the engine calls them (one after the
    other, as with ``PARALLEL_RETRIEVAL = False``): the filter's bounded read (its ids when it keeps few),
    the vector search, BM25 and the facet counts (one statement for a model with facets), then the vector
    candidates' share of the counts."""
    from urllib.parse import parse_qs, urlparse

    from catalog_search import conf
    from catalog_search.analysis import get_analyzer
    from catalog_search.models import Encoder
    from catalog_search.retrieval import bm25, facets, vector
    from catalog_search.retrieval.filters import object_ids_sql, passing_ids, small_ids
    from catalog_search.retrieval.query import build_query

    row = Encoder.objects.get(state="active")
    pool = conf.settings().CANDIDATES
    cap = conf.settings().EXACT_SEARCH_MAX_ROWS
    parts: dict[str, list[float]] = {"count": [], "vector": [], "bm25+facets": [], "candidates": []}
    for path, qvec in zip(paths, qvecs, strict=True):
        params = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(urlparse(path).query).items()}
        text = params.pop("q")
        query = build_query(q=text, filters=params)
        index = query.indexes[0]
        filters = query.index_filters[index.label]
        fsql = object_ids_sql(index, filters)
        terms = get_analyzer().terms(text)
        ct = index.content_type.pk
        passing = partial(passing_ids, index, filters)
        t0 = time.perf_counter()
        ids = small_ids(fsql, cap) if fsql is not None else None  # as the engine reads the filter (filters.plan)
        count = None if fsql is None else cap + 1 if ids is None else len(ids.ids)
        fsql = fsql if ids is None else ids
        large = count is not None and count > cap
        t1 = time.perf_counter()
        hits = vector.search(
            qvec,
            encoder_id=row.pk,
            dim=row.dim,
            content_type_id=ct,
            weights={"image": 1.0},
            restriction=fsql,
            limit=pool,
            passing=passing,
            count=count,
            all_similarities=False,
        )
        t2 = time.perf_counter()
        match = bm25.match(ct, terms)
        both = facets.keyword_matches_and_counts(index, filters, match, restriction=None if large else fsql, limit=pool)
        assert both is not None, "the demo's Product has facets: one statement"
        t3 = time.perf_counter()
        counted = both[1] + facets.candidate_counts(
            index, filters, match, restriction=None, candidates=[(h.document_id, h.object_id) for h in hits]
        )
        facets.count(
            query.indexes,
            query.index_filters,
            matches={index.label: match},
            vector_ids={},
            done={index.label: counted},
        )
        t4 = time.perf_counter()
        for name, ms in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[name].append(ms * 1000)
    return {name: median(values) for name, values in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--real", type=int, help="products through the real path; the rest SQL copies (scale_data)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=60, help="fresh queries per run")
    parser.add_argument("--config", default="2x4:t1", help="gunicorn WORKERSxTHREADS[:tTORCH_THREADS]")
    parser.add_argument(
        "--settings",
        type=json.loads,
        default={},
        help='more CATALOG_SEARCH settings for the servers, as JSON (e.g. \'{"FACETS_OVER": "results"}\')',
    )
    parser.add_argument("--label", default="", help="names this measurement in the doc (e.g. 'before')")
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("search_latency.py", argv)
    args.note = note_text(args.note, args.note_file)
    facts = machine_facts()
    import redis

    try:
        cache = redis.Redis.from_url(CACHE_URL, socket_connect_timeout=2)
        cache.ping()
    except redis.RedisError as exc:
        raise SystemExit(f"No Redis at {CACHE_URL} ({exc}); start it (see DESIGN.md).") from None
    specs = {size: ScaleSpec(size, args.seed, args.real) for size in args.sizes}
    loaded = {size: ensure_loaded(spec) for size, spec in specs.items()}
    envs = {size: start(spec) for size, spec in specs.items()}
    setup_django(envs[args.sizes[-1]])
    from catalog_search import conf

    has_cache_setting = "QUERY_CACHE" in conf.DEFAULTS
    software = versions(["torch", "transformers", "gunicorn", "redis"])
    config = ServerConfig.parse(args.config)
    tmp = Path(tempfile.mkdtemp(prefix="catalog-search-latency-"))
    servers = {}
    for size in args.sizes:
        env = dict(envs[size], BENCH_CACHE_URL=CACHE_URL, BENCH_CACHE_PREFIX=f"latency-{size}")
        env["BENCH_CATALOG_SEARCH"] = json.dumps({"QUERY_CACHE": "default", **args.settings})
        print(f"==> gunicorn {config} on {size:,} products", file=sys.stderr)
        servers[size] = Server(config, env, tmp / f"gunicorn-{size}.log")
        servers[size].start()
    rng, seen = random.Random(args.seed), set()
    # samples[size][state] = list per run of (client ms list, server ms list)
    samples: dict[int, dict[str, list[tuple[list[float], list[float]]]]] = {
        s: {st: [] for st in STATES} for s in args.sizes
    }
    cache_keys = []
    try:
        conns = {s: http.client.HTTPConnection("127.0.0.1", servers[s].port, timeout=120) for s in args.sizes}
        for s in args.sizes:  # warm up: database caches and code paths, with queries never measured
            for path in make_queries(10, rng, seen):
                ask(conns[s], path)
        for run in range(1, args.runs + 1):
            cache.flushdb()
            queries = make_queries(args.queries, rng, seen)
            # Fresh queries whose cached embeddings are what a trained encoder would give (see the doc).
            seeded = make_queries(args.queries, rng, seen)
            for s in args.sizes:
                seed_cache(s, seeded, catalog_vectors(seeded, seed=run))
            for state in STATES:
                got = {s: ([], []) for s in args.sizes}
                # One size's block of queries, then the other's, the order alternating by run: asked query
                # by query, the two servers and databases evict each other from the CPU caches.
                for s in args.sizes if run % 2 else list(reversed(args.sizes)):
                    for path in seeded if state == "cached, catalog-like" else queries:
                        client_ms, server_ms = ask(conns[s], path)
                        got[s][0].append(client_ms)
                        got[s][1].append(server_ms)
                for s in args.sizes:
                    samples[s][state].append(got[s])
                if state == "uncached":
                    cache_keys.append(cache.dbsize())
            print(
                f"run {run}: "
                + "  ".join(
                    f"{s:,} {st} p50 {percentile(samples[s][st][-1][0], 50):.0f} p95 "
                    f"{percentile(samples[s][st][-1][0], 95):.0f} ms"
                    for s in args.sizes
                    for st in STATES
                )
                + f"  (cache keys after the uncached pass: {cache_keys[-1]})"
            )
        problems = [p for s in args.sizes for p in servers[s].log_problems()]
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    parts = {}
    for size in args.sizes:  # where the time goes, in process, on each catalog
        from bench.common import use_database

        use_database(envs[size]["DATABASE_URL"])
        paths = make_queries(30, random.Random(args.seed + 1), set())
        for kind, qvecs in (("model", model_vectors(paths)), ("catalog-like", catalog_vectors(paths, seed=0))):
            parts[(size, kind)] = breakdown(paths, qvecs)
            print(
                f"{size:,} {kind} in process: " + ", ".join(f"{k} {v:.0f} ms" for k, v in parts[(size, kind)].items())
            )

    def stat(size: int, state: str, p: float, which: int = 0) -> float:
        return median(percentile(r[which], p) for r in samples[size][state])

    lines = section_header(
        heading(args.sizes),
        command,
        facts,
        software,
        f"{args.runs} runs x {args.queries} fresh queries; per run and cache state, one size's block of queries then "
        "the other's (order alternating by run), cache states in "
        "the same run; every cell is the median over runs of that run's percentile.",
    )
    lines += [
        f"- **Catalogs**: {', '.join(format(loaded[s]['products'], ',') for s in args.sizes)} demo-shop products "
        "(`bench/scale_data.py`: real documents and BM25 statistics, synthetic CLIP-like vectors, production HNSW).",
        f"- **Server**: `gunicorn demo_project.wsgi`, {config}, one server per catalog, bench settings (DEBUG off, "
        "throttling off"
        + (f"; {', '.join(f'`{k}` = `{v!r}`' for k, v in args.settings.items())}" if args.settings else "")
        + "); workers warmed up (model loaded, a text and a photo search) plus 10 unmeasured queries.",
        f"- **Query cache**: `CATALOG_SEARCH['QUERY_CACHE'] = 'default'`, RedisCache at {CACHE_URL}, flushed per run. "
        + (
            "`QUERY_CACHE` is a setting of this checkout"
            if has_cache_setting
            else "**`QUERY_CACHE` is not a setting of this checkout yet: both states encode every query**"
        )
        + f"; keys in the cache after each uncached pass: {', '.join(map(str, cache_keys))}.",
        "- **Requests**: one keep-alive client, sequential; `mode` hybrid (default), `k` 20, facets on; half "
        "`category` + `price__lte` (the category of the product the query names), half `in_stock=true` + "
        "`price__gte`.",
        "- **Query vectors**: *uncached* and *cached* use the random-weight ViT-B/32's own text embedding, which "
        "points nowhere in particular among the synthetic stored vectors: for a filtered search that is the worst "
        "case, the query's nearest neighbours are unrelated to the filter, so few of them pass it. *cached, "
        "catalog-like* sends other fresh queries whose cached embedding (written to the server's cache beforehand, "
        "under the key the server computes) is what a trained encoder gives: the stored vectors' own recipe for "
        "what the query names (type, color, material or brand), so its neighbours are the products it names, as "
        "with a real CLIP model. The filtered vector search behaves differently in the two cases (see *vector* "
        "below and docs/architecture.md, vector retrieval).",
        "",
        "| products | cache | p50 ms | p95 ms | server p50 ms | server p95 ms |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for s in args.sizes:
        for st in STATES:
            lines.append(
                f"| {s:,} | {st} | {fmt(stat(s, st, 50))} | {fmt(stat(s, st, 95))} | {fmt(stat(s, st, 50, 1))} "
                f"| {fmt(stat(s, st, 95, 1))} |"
            )
    big, small = args.sizes[-1], args.sizes[0]
    goal50, goal95 = TARGETS[min((t for t in TARGETS if t >= big), default=max(TARGETS))]
    lines += [
        "",
        "Client ms = request sent to last byte read (HTTP, JSON, Django, search); server ms = the `took_ms` the "
        "API reports (the search call alone).",
        "",
        f"Ratios (same runs): uncached / cached p50 at {big:,}: "
        f"{stat(big, 'uncached', 50) / stat(big, 'cached', 50):.2f}x; {big:,} / {small:,} cached p50: "
        f"{stat(big, 'cached', 50) / stat(small, 'cached', 50):.2f}x, p95: "
        f"{stat(big, 'cached', 95) / stat(small, 'cached', 95):.2f}x.",
        "",
        f"**Target at {big:,}** (p50 <= {goal50} ms and p95 <= {goal95} ms, cached): "
        + "; ".join(
            f"{st}: p50 {stat(big, st, 50):.0f} ms, p95 {stat(big, st, 95):.0f} ms, "
            + ("**met**" if stat(big, st, 50) <= goal50 and stat(big, st, 95) <= goal95 else "**missed**")
            for st in STATES[1:]
        )
        + ".",
        "",
        "Where the time goes, in process on the same databases (30 of the same kind of queries, median ms; no HTTP, "
        "no encoding): "
        + "; ".join(
            f"{s:,} with {kind} vectors: " + ", ".join(f"{k} {v:.0f}" for k, v in parts[(s, kind)].items())
            for s in args.sizes
            for kind in ("model", "catalog-like")
        )
        + ". *count* = the bounded read of the filter (`filters.small_ids`), *vector* = `retrieval.vector.search` "
        "(nearest neighbours and the filter check, scored from the search's own distances), *bm25+facets* = "
        "`retrieval.facets.keyword_matches_and_counts`: one statement scoring every keyword match, reading the "
        "shop rows of the matched set and counting the facets; *candidates* = `facets.candidate_counts`: the "
        "vector candidates that are not keyword matches, counted. With `PARALLEL_RETRIEVAL` (default on) the "
        "server runs *vector* and *bm25+facets* side by side on two connections, so a search takes about "
        "count + max(vector, bm25+facets) + candidates of them.",
        "",
        "Per run (client p50/p95 ms): "
        + "; ".join(
            f"{s:,} {st}: "
            + ", ".join(f"{percentile(r[0], 50):.0f}/{percentile(r[0], 95):.0f}" for r in samples[s][st])
            for s in args.sizes
            for st in STATES
        )
        + ".",
    ]
    if problems:
        lines += ["", "gunicorn log problems:", "", *(f"    {p}" for p in sorted(set(problems))[:10])]
    publish(lines, args.note, args.doc, heading(args.sizes), write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
