"""Filtered ANN recall@10 of the real vector retrieval against exact search, at several filter selectivities.

    python bench/ann_recall.py --products 100000 --queries 200

For every selectivity (50%, 10%, 1%, 0.1% of the catalog) two filters, written as API filters on the
demo shop's declared filter fields:

- *price band*: ``price__gte`` / ``price__lte`` around the median price, nearly independent of what a
  query looks for (every category has cheap and expensive products);
- *attributes*: ``category`` / ``color`` / ``brand`` combinations, strongly correlated with the vectors:
  most queries look for something the filter excludes, so the nearest allowed rows are far away in the
  graph. This is the hard case for a filtered HNSW scan.

Each query (a synthetic text-side vector, ``scale_data.query_vectors``: the same recipe as the stored
vectors, never stored) runs through ``catalog_search.retrieval.vector.search`` exactly as a text
search does (image column, the filter compiled by ``retrieval.filters.object_ids_sql``, ``limit`` =
the candidate pool CANDIDATES, the filter checked on over-fetched candidates by
``retrieval.filters.passing_ids``), which picks the exact path for a small filter and the HNSW over-fetch
(falling back to exact when too few candidates pass) for a large one; the table shows the share of
queries answered by each. The oracle is a NumPy brute force over every stored vector that passes the same filter
(the allowed ids come from the ORM). Recall@10 = |top 10 returned ∩ true top 10| / 10.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    add_doc_arguments,
    fmt,
    machine_facts,
    note_text,
    section_header,
    setup_django,
    shown_command,
    versions,
    write_section,
)
from bench.scale_data import ScaleSpec, ensure_loaded, query_vectors, start

HEADING = "## Filtered ANN recall (bench/ann_recall.py)"
TARGETS = (0.5, 0.1, 0.01, 0.001)
K = 10


@dataclass
class Case:
    target: float
    kind: str  # "price band" | "attributes"
    filters: dict[str, Any]
    rows: int = 0


@dataclass
class Outcome:
    case: Case
    path: str
    recall: list[float]
    returned: list[int]
    ms: list[float]
    plan: str = ""


def executed_plan(call) -> str:
    """What PostgreSQL really did for the nearest-neighbour statement of ``call``: "HNSW index" if the
    plan reads the encoder's HNSW index, else "full scan + sort" (EXPLAIN of the statement, same params)."""
    from django.db import connection

    found: list[str] = []

    def wrapper(execute, sql, params, many, context):
        if "<=>" in sql and "FROM catalog_search_embedding e" in sql and not found:
            raw = context["cursor"].cursor  # the driver's cursor: no wrapper, no recursion
            raw.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            text = str(raw.fetchone()[0])
            found.append("HNSW index" if "catalog_search_emb_image" in text else "full scan + sort")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        call()
    return found[0] if found else "-"


def load_vectors(encoder_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(object ids as int64, image vectors float32) of every stored product, read in binary."""
    from django.db import connection, transaction
    from pgvector.psycopg import register_vector

    connection.ensure_connection()
    register_vector(connection.connection)
    ids, vecs = [], []
    # A server-side cursor: binary results (no float parsing in Python) need one.
    with transaction.atomic(), connection.connection.cursor(name="oracle", binary=True) as cursor:
        cursor.execute(
            f"SELECT object_id::bigint, image::vector(512) FROM catalog_search_embedding "
            f"WHERE encoder_id = {int(encoder_id)} AND image IS NOT NULL ORDER BY 1"
        )
        for oid, vec in cursor:
            ids.append(oid)
            vecs.append(vec.to_numpy())
    return np.asarray(ids, dtype=np.int64), np.stack(vecs).astype(np.float32)


def price_band(target: float, prices: np.ndarray) -> dict[str, Any]:
    """A price interval holding about ``target`` of the products, as close to the median as possible.
    Prices repeat (49.99, 54.95...), so the interval is chosen over distinct prices, not quantiles."""
    if target >= 0.5:
        return {"price__lte": str(np.quantile(prices, 0.5))}
    values, counts = np.unique(prices, return_counts=True)
    cum = np.concatenate([[0], np.cumsum(counts)])
    want, mid = target * len(prices), np.searchsorted(values, np.median(prices))
    best: tuple[float, int, int, int] | None = None
    for i in range(len(values)):
        j = int(np.searchsorted(cum, cum[i] + want))  # first j with cum[j] - cum[i] >= want
        for end in (j - 1, j):
            if i < end <= len(values):
                score = (round(abs(np.log((cum[end] - cum[i]) / want)), 2), abs(i - mid))
                if best is None or score < best[:2]:
                    best = (*score, i, end)
    assert best is not None
    _, _, i, end = best
    return {"price__gte": str(values[i]), "price__lte": str(values[end - 1])}


def attribute_filter(target: float, rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The category / color / brand combination whose share is closest to ``target`` (in log terms)."""
    from collections import Counter
    from itertools import combinations

    n = len(rows)
    categories = Counter(r[0] for r in rows)
    candidates: list[tuple[float, dict[str, Any]]] = []
    names = sorted(categories)
    for size in range(1, len(names)):
        for combo in combinations(names, size):
            share = sum(categories[c] for c in combo) / n
            candidates.append((share, {"category": list(combo)}))
    for (cat, color), count in Counter((r[0], r[1]) for r in rows).items():
        candidates.append((count / n, {"category": [cat], "color": [color]}))
    for (cat, color, brand), count in Counter(rows).items():
        candidates.append((count / n, {"category": [cat], "color": [color], "brand": [brand]}))
    return min(candidates, key=lambda c: (abs(np.log(c[0] / target)), str(c[1])))[1]


def allowed_mask(filters: dict[str, Any], ids: np.ndarray) -> np.ndarray:
    from demo_project.shop.models import Product

    query = Product.objects.all()
    for key, value in filters.items():
        query = query.filter(**({f"{key}__in": value} if isinstance(value, list) else {key: value}))
    allowed = np.fromiter(query.values_list("id", flat=True), dtype=np.int64)
    return np.isin(ids, allowed)


def run_case(case: Case, queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, encoder_id: int) -> Outcome:
    from django.db import connection

    from catalog_search import conf
    from catalog_search.retrieval import vector
    from catalog_search.retrieval.filters import count_filtered, object_ids_sql, passing_ids
    from catalog_search.retrieval.query import build_query

    query = build_query(q="x", filters=case.filters, k=K, mode="vector")
    index = query.indexes[0]
    filter_sql = object_ids_sql(index, query.index_filters[index.label])
    limit = max(conf.settings().CANDIDATES, K)
    passing = partial(passing_ids, index, query.index_filters[index.label])
    count = count_filtered(filter_sql, conf.settings().EXACT_SEARCH_MAX_ROWS)
    small = count is not None and count <= conf.settings().EXACT_SEARCH_MAX_ROWS
    plan = executed_plan(
        lambda: vector.search(
            queries[0],
            encoder_id=encoder_id,
            dim=512,
            content_type_id=index.content_type.pk,
            weights={"image": 1.0},
            restriction=filter_sql,
            limit=limit,
            passing=passing,
        )
    )
    statements: list[str] = []

    def log(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    mask = allowed_mask(case.filters, ids)
    case.rows = int(mask.sum())
    allowed_ids, allowed_vecs = ids[mask], vectors[mask]
    recall, returned, ms, fallbacks = [], [], [], 0
    for q in queries:
        statements.clear()
        start = time.perf_counter()
        with connection.execute_wrapper(log):
            hits = vector.search(
                q,
                encoder_id=encoder_id,
                dim=512,
                content_type_id=index.content_type.pk,
                weights={"image": 1.0},
                restriction=filter_sql,
                limit=limit,
                passing=passing,
            )
        ms.append((time.perf_counter() - start) * 1000)
        fallbacks += any("OFFSET 0" in sql for sql in statements)
        truth = set(allowed_ids[np.argsort(-(allowed_vecs @ q), kind="stable")[:K]].tolist())
        got = [int(h.object_id) for h in hits[:K]]
        recall.append(len(truth & set(got)) / min(K, len(truth)) if truth else 1.0)
        returned.append(len(hits))
    if small:
        path = "exact (small filter)"
    elif fallbacks:
        path = f"HNSW over-fetch, exact fallback in {fallbacks / len(queries):.0%}"
    else:
        path = "HNSW over-fetch"
    return Outcome(case, path, recall, returned, ms, plan)


PIPE = "\\|"


def render(args, command: str, facts, software: str, loaded, outcomes: list[Outcome], settings: dict) -> str:
    lines = section_header(
        HEADING,
        command,
        facts,
        software,
        f"{args.queries} queries per filter; recall is deterministic, times are medians over all queries.",
    )
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`, seed {loaded['seed']}): "
        "real documents, synthetic CLIP-like 512-d vectors (see *Scale data* below), HNSW "
        f"m = {settings['HNSW_M']}, ef_construction = {settings['HNSW_EF_CONSTRUCTION']}.",
        f"- **Search settings**: CANDIDATES = {settings['CANDIDATES']} (the `limit` of every vector search), "
        f"HNSW_EF_SEARCH = {settings['HNSW_EF_SEARCH']} (ef_search = max(that, limit)), HNSW_MAX_SCAN_TUPLES = "
        f"{settings['HNSW_MAX_SCAN_TUPLES']}, EXACT_SEARCH_MAX_ROWS = {settings['EXACT_SEARCH_MAX_ROWS']}, "
        f"FILTERED_ANN_DEPTH = {settings['FILTERED_ANN_DEPTH']}.",
        "",
        "| target | filter | matching rows | path taken by vector.py | plan of its first statement | recall@10 mean | recall@10 min | queries with < min(10, rows) results "
        f"| results returned (of {settings['CANDIDATES']}) min / median | ms p50 |",
        "|---:|---|---:|---|---|---:|---:|---:|---|---:|",
    ]
    for o in outcomes:
        # `|` between a filter's values, escaped: a bare one would end the table cell.
        filt = ", ".join(f"{k}={PIPE.join(v) if isinstance(v, list) else v}" for k, v in o.case.filters.items())
        short = sum(1 for r in o.returned if r < min(K, o.case.rows))
        lines.append(
            f"| {o.case.target:.1%} | {o.case.kind}: `{filt}` | {o.case.rows:,} ({o.case.rows / loaded['products']:.2%}) "
            f"| {o.path} | {o.plan} | {np.mean(o.recall):.3f} | {min(o.recall):.2f} | {short} "
            f"| {min(o.returned)} / {median(o.returned):.0f} | {fmt(median(o.ms), 1)} |"
        )
    ok = all(np.mean(o.recall) >= 0.95 and min(o.returned) >= min(K, o.case.rows) for o in outcomes)
    lines += [
        "",
        f"**Target** (recall@10 >= 0.95 and {K} results at every selectivity): "
        + ("**met** for every filter." if ok else "**missed** where the table shows it; see below."),
    ]
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=200)
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("ann_recall.py", argv)
    args.note = note_text(args.note, args.note_file)
    facts = machine_facts()
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    setup_django(start(spec))

    from catalog_search import conf
    from demo_project.shop.models import Product

    settings = {
        name: getattr(conf.settings(), name)
        for name in (
            "CANDIDATES",
            "HNSW_M",
            "HNSW_EF_CONSTRUCTION",
            "HNSW_EF_SEARCH",
            "HNSW_MAX_SCAN_TUPLES",
            "EXACT_SEARCH_MAX_ROWS",
            "FILTERED_ANN_DEPTH",
        )
    }
    print("==> Reading the stored vectors for the oracle", file=sys.stderr)
    ids, vectors = load_vectors(loaded["encoder_id"])
    prices = np.array([float(p) for p in Product.objects.values_list("price", flat=True)])
    attrs = list(Product.objects.values_list("category", "color", "brand"))
    queries, _ = query_vectors(args.queries)
    cases = []
    for target in TARGETS:
        cases.append(Case(target, "price band", price_band(target, prices)))
        cases.append(Case(target, "attributes", attribute_filter(target, attrs)))
    outcomes = []
    for case in cases:
        outcome = run_case(case, queries, ids, vectors, loaded["encoder_id"])
        outcomes.append(outcome)
        print(
            f"{case.target:>6.1%} {case.kind:<11} rows {case.rows:>6} {outcome.path:<15} ran {outcome.plan:<17} "
            f"recall@10 mean {np.mean(outcome.recall):.3f} min {min(outcome.recall):.2f} "
            f"returned min {min(outcome.returned)} median {median(outcome.returned):.0f} "
            f"ms p50 {median(outcome.ms):.1f}  {case.filters}"
        )
    if not args.no_doc:
        write_section(args.doc, render(args, command, facts, versions(), loaded, outcomes, settings), HEADING)
        print(f"Wrote '{HEADING}' in {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
