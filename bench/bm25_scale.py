"""BM25 query time versus catalog size (100k, 1M documents' worth of postings), beside tantivy.

    python bench/bm25_scale.py --sizes 100000 1000000 --runs 5

Each query is also asked of tantivy (``bench/tantivy_peer.py``: the Lucene-like Rust engine's Python
binding, on the same documents' analyzed terms) right after ours, in the same run: p50 / p95 of both,
the per-query ratio, and the bytes each takes for the postings.

Databases come from ``bench/scale_data.py``: 10k and 100k products indexed through the real path; 1M =
the 100k real ones plus 9 copies made in SQL (products, documents, postings; df, N and total length
recounted). Every database runs its own embedded PostgreSQL; the script's Django connection is pointed
at each in turn, so all sizes are measured in the same run, interleaved: run 1 = 10k, 100k, 1M, run 2
= 10k, ... Times are per query (``retrieval.bm25.search`` with ``limit`` = CANDIDATES, what a search
request runs), p50 and p95 over every query of a mix in every run.

Query mixes (analyzed with the catalog analyzer, terms picked from the 100k corpus' statistics):
rare terms (df 0.05-0.3% of the catalog), common terms (df > 10%), 2-3 term queries from the catalog
vocabulary ("red leather handbag"), and those same queries with a category filter.
Why it grows the way it does: rows scored per query = the sum of the terms' df, which grows linearly with
the catalog for a fixed vocabulary (every posting of the terms is scored).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    add_doc_arguments,
    machine_facts,
    note_text,
    section_header,
    setup_django,
    shown_command,
    use_database,
    versions,
    write_section,
)
from bench.scale_data import ScaleSpec, ensure_loaded, start

HEADING = "## BM25 query time vs catalog size (bench/bm25_scale.py)"
MIXES = ("rare", "common", "multi", "multi+filter")


def spec_for(size: int, seed: int) -> ScaleSpec:
    return ScaleSpec(size, seed) if size <= 100_000 else ScaleSpec(size, seed, real=100_000, vectors=False)


def pick_queries(seed: int, per_mix: int) -> dict[str, list[tuple[str, dict]]]:
    """Queries per mix, from the statistics of the database the connection points at (the 100k one)."""
    from django.db import connection

    from catalog_search.analysis import get_analyzer
    from demo_project.shop.artwork import TYPES
    from demo_project.shop.catalog import MATERIALS
    from demo_project.shop.photos import COLORS

    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute("SELECT doc_count FROM catalog_search_corpusstat")
        (n,) = cursor.fetchone()
        cursor.execute(
            "SELECT term FROM catalog_search_termstat WHERE df BETWEEN %s AND %s AND term ~ '^[a-z]{4,}$' ORDER BY term",
            [n * 0.0005, n * 0.003],
        )
        rare = [t for (t,) in cursor.fetchall()]
        cursor.execute("SELECT term FROM catalog_search_termstat WHERE df > %s ORDER BY term", [n * 0.1])
        common = [t for (t,) in cursor.fetchall()]
    analyzer = get_analyzer()
    multi = []
    while len(multi) < per_mix:
        art = rng.choice(TYPES)
        noun, color = rng.choice(art.terms), rng.choice(COLORS[rng.choice(list(COLORS))].terms)
        q = rng.choice([f"{color} {noun}", f"{color} {rng.choice(MATERIALS[art.materials])} {noun}"])
        if 2 <= len(set(analyzer.terms(q))) <= 3:
            multi.append((q, {"category": [art.category]}))
    return {
        "rare": [(t, {}) for t in rng.sample(rare, min(per_mix, len(rare)))],
        "common": [(t, {}) for t in rng.sample(common, min(per_mix, len(common)))],
        "multi": [(q, {}) for q, _ in multi],
        "multi+filter": multi,
    }


def prepared(queries: dict[str, list[tuple[str, dict]]]) -> dict[str, list[tuple[str, list[str], Any]]]:
    """(text, terms, filter SQL) per query, compiled the way search() compiles them."""
    from catalog_search.analysis import get_analyzer
    from catalog_search.retrieval.filters import object_ids_sql, passing_ids
    from catalog_search.retrieval.query import build_query

    out: dict[str, list[tuple[str, list[str], Any]]] = {}
    for mix, items in queries.items():
        out[mix] = []
        for text, filters in items:
            query = build_query(q=text, filters=filters, mode="bm25")
            index = query.indexes[0]
            filter_sql = object_ids_sql(index, query.index_filters[index.label])
            passing = partial(passing_ids, index, query.index_filters[index.label])
            category = (filters.get("category") or [None])[0]
            out[mix].append((text, get_analyzer().terms(text), (filter_sql, passing), category))
    return out


def run_search(ct: int, terms: list[str], filtering, limit: int) -> None:
    """What a search request runs for BM25: with a filter, the bounded filter count, then the filter inside
    the query or checked on the best unfiltered matches (``passing``), as ``keyword_signal`` decides."""
    from catalog_search import conf
    from catalog_search.retrieval import bm25
    from catalog_search.retrieval.filters import count_filtered

    filter_sql, passing = filtering
    cap = conf.settings().EXACT_SEARCH_MAX_ROWS
    count = count_filtered(filter_sql, cap)
    bm25.search(ct, terms, filter_sql, limit, passing=passing if count is not None and count > cap else None)


def measure(queries, ct: int, limit: int, searcher, index) -> dict[str, dict[str, list[float]]]:
    """ms per query of each mix, ours and tantivy's, each query asked of both one right after the other
    (after one unmeasured pass of both: the steady state of a busy shop)."""
    from bench import tantivy_peer

    out: dict[str, dict[str, list[float]]] = {"ours": {}, "tantivy": {}}
    for mix, items in queries.items():
        peer = [tantivy_peer.query(index, terms, category) for _t, terms, _f, category in items]
        for (_text, terms, filtering, _c), prepared_query in zip(items, peer, strict=True):
            run_search(ct, terms, filtering, limit)
            tantivy_peer.search(searcher, prepared_query, limit)
        ours, theirs = [], []
        for (_text, terms, filtering, _c), prepared_query in zip(items, peer, strict=True):
            start = time.perf_counter()
            run_search(ct, terms, filtering, limit)
            middle = time.perf_counter()
            tantivy_peer.search(searcher, prepared_query, limit)
            ours.append((middle - start) * 1000)
            theirs.append((time.perf_counter() - middle) * 1000)
        out["ours"][mix], out["tantivy"][mix] = ours, theirs
    return out


def storage(ct: int) -> dict[str, float]:
    """Our postings on disk (the posting table with its covering primary key) and how many there are."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size('catalog_search_posting'), "
            "(SELECT count(*) FROM catalog_search_posting WHERE content_type_id = %s)",
            [ct],
        )
        size, postings = cursor.fetchone()
    return {"bytes": size, "postings": int(postings)}


def scored_rows(queries, ct: int) -> dict[str, float]:
    """Median over a mix's queries of the postings a query reads: the sum of its terms' df."""
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        for mix, items in queries.items():
            sums = []
            for _text, terms, _f, _c in items:
                cursor.execute(
                    "SELECT coalesce(sum(df), 0) FROM catalog_search_termstat WHERE content_type_id = %s "
                    "AND term = ANY(%s)",
                    [ct, sorted(set(terms))],
                )
                sums.append(float(cursor.fetchone()[0]))
            out[mix] = median(sums)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--per-mix", type=int, default=20, help="queries per mix")
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("bm25_scale.py", argv)
    args.note = note_text(args.note, args.note_file)
    facts = machine_facts()
    specs = {size: spec_for(size, args.seed) for size in args.sizes}
    loaded = {size: ensure_loaded(spec) for size, spec in specs.items()}
    envs = {size: start(spec) for size, spec in specs.items()}
    reference = 100_000 if 100_000 in envs else args.sizes[-1]
    setup_django(envs[reference])

    from bench import tantivy_peer
    from catalog_search import conf

    limit = conf.settings().CANDIDATES
    queries = prepared(pick_queries(args.seed, args.per_mix))
    cts, peers = {}, {}
    for size in args.sizes:
        use_database(envs[size]["DATABASE_URL"])
        cts[size] = _scalar("SELECT id FROM django_content_type WHERE app_label = 'shop' AND model = 'product'")
        peers[size] = tantivy_peer.ensure_index(specs[size].data_dir / "tantivy", cts[size])
    assert len(set(cts.values())) == 1, f"content type ids differ between databases: {cts}"
    ct = cts[reference]
    searchers = {size: peers[size][0].searcher() for size in args.sizes}
    times: dict[int, list[dict]] = {size: [] for size in args.sizes}
    for run in range(1, args.runs + 1):
        for size in args.sizes:
            use_database(envs[size]["DATABASE_URL"])
            times[size].append(measure(queries, ct, limit, searchers[size], peers[size][0]))
            print(
                f"run {run} {size:>8}: "
                + "  ".join(
                    f"{m} {median(times[size][-1]['ours'][m]):.1f}/{median(times[size][-1]['tantivy'][m]):.2f} ms"
                    for m in MIXES
                )
            )
    facts_after = {}
    for size in args.sizes:
        use_database(envs[size]["DATABASE_URL"])
        facts_after[size] = {
            "rows": scored_rows(queries, ct),
            "software": versions(),
            "storage": storage(ct),
            "peer": peers[size][1],
            "documents": _count("catalog_search_document"),
            "terms": _count("catalog_search_termstat"),
        }
    stats = {size: summarize(times[size]) for size in args.sizes}
    print_table(args.sizes, stats, facts_after)
    if not args.no_doc:
        section = render(args, command, facts, loaded, stats, facts_after, queries, limit)
        write_section(args.doc, section, HEADING)
        print(f"Wrote '{HEADING}' in {args.doc}")
    return 0


def summarize(runs: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """engine -> mix -> p50 / p95 over every query of every run, and the median per-query ratio."""
    out: dict[str, dict[str, dict[str, float]]] = {"ours": {}, "tantivy": {}, "ratio": {}}
    for mix in MIXES:
        for engine in ("ours", "tantivy"):
            values = sorted(v for run in runs for v in run[engine][mix])
            out[engine][mix] = {"p50": median(values), "p95": values[min(len(values) - 1, int(0.95 * len(values)))]}
        pairs = [a / b for run in runs for a, b in zip(run["ours"][mix], run["tantivy"][mix], strict=True) if b > 0]
        out["ratio"][mix] = {"p50": median(pairs)}
    return out


def _scalar(sql: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


def _count(table: str) -> int:
    return _scalar(f"SELECT count(*) FROM {table}")


def _per_posting(facts: dict, key: str) -> float:
    return facts["storage"][key] / max(facts["storage"]["postings"], 1)


def print_table(sizes, stats, facts_after) -> None:
    print(f"\n{'size':>9} " + " ".join(f"{m:>24}" for m in MIXES) + "   (ours p50/p95 ms | tantivy p50 | ratio)")
    for size in sizes:
        cells = [
            f"{stats[size]['ours'][m]['p50']:.1f}/{stats[size]['ours'][m]['p95']:.1f} | "
            f"{stats[size]['tantivy'][m]['p50']:.2f} | {stats[size]['ratio'][m]['p50']:.0f}x"
            for m in MIXES
        ]
        f = facts_after[size]
        print(f"{size:>9} " + " ".join(f"{c:>24}" for c in cells))
        print(
            f"{'':>9} postings {f['storage']['postings']:,}: ours {f['storage']['bytes'] / 2**20:.1f} MiB "
            f"({_per_posting(f, 'bytes'):.1f} B/posting), tantivy {f['peer']['bytes'] / 2**20:.1f} MiB"
        )


def render(args, command, facts, loaded, stats, facts_after, queries, limit) -> str:
    sizes = args.sizes
    lines = section_header(
        HEADING,
        command,
        facts,
        facts_after[sizes[-1]]["software"],
        f"{args.runs} runs, sizes in turn within each run, each query asked of our engine and of tantivy one "
        f"right after the other; p50 / p95 over every query of every run ({args.per_mix} queries per mix).",
    )
    lines += [
        "- **Corpora** (`bench/scale_data.py`): "
        + "; ".join(
            f"{s:,} products = {facts_after[s]['documents']:,} documents, {facts_after[s]['storage']['postings']:,} "
            f"postings, {facts_after[s]['terms']:,} distinct terms"
            + (f" ({loaded[s]['real']:,} indexed for real, the rest SQL copies)" if loaded[s]["real"] < s else "")
            for s in sizes
        )
        + ".",
        f"- **Ours**: `catalog_search.retrieval.bm25.search(..., limit={limit})` (the candidate pool of a search "
        "request): every posting of the query's terms read from the posting primary key alone (tf, document "
        "length and object id are INCLUDE columns), scored, grouped, top k, in one statement; with a filter, the "
        "bounded filter count first, and a filter keeping more than EXACT_SEARCH_MAX_ROWS objects is checked on the best unfiltered "
        "matches (docs/architecture.md, BM25). Minimum should match as configured (75%).",
        "- **tantivy** (`bench/tantivy_peer.py`): the same documents' analyzed terms, the same queries' terms "
        f"OR-ed, top {limit}, the category filter as a required term; in process, one thread.",
        "- **Mixes**: "
        + "; ".join(f"*{mix}*: " + ", ".join(f"`{q[0]}`" for q in queries[mix][:4]) + ", ..." for mix in MIXES)
        + " (the *multi+filter* queries add `category=<the type's category>`).",
        "",
        "| products | engine | " + " | ".join(f"{m} p50 / p95 ms" for m in MIXES) + " |",
        "|---:|---|" + "---:|" * len(MIXES),
    ]
    for s in sizes:
        for engine in ("ours", "tantivy"):
            lines.append(
                f"| {s:,} | {engine} | "
                + " | ".join(f"{stats[s][engine][m]['p50']:.2f} / {stats[s][engine][m]['p95']:.2f}" for m in MIXES)
                + " |"
            )
        lines.append(
            f"| {s:,} | ours / tantivy (per-query median) | "
            + " | ".join(f"{stats[s]['ratio'][m]['p50']:.1f}x" for m in MIXES)
            + " |"
        )
    lines += [
        "",
        "| products | rows scored by the exhaustive scorer (sum of the terms' df, median) | "
        + " | ".join(MIXES)
        + " |",
        "|---:|---|" + "---:|" * len(MIXES),
    ]
    for s in sizes:
        lines.append(f"| {s:,} | | " + " | ".join(f"{facts_after[s]['rows'][m]:,.0f}" for m in MIXES) + " |")
    lines += [
        "",
        "| products | our postings on disk | per posting | tantivy index | ours / tantivy |",
        "|---:|---:|---:|---:|---:|",
    ]
    for s in sizes:
        f = facts_after[s]
        lines.append(
            f"| {s:,} | {f['storage']['bytes'] / 2**20:.1f} MiB | {_per_posting(f, 'bytes'):.1f} B | "
            f"{f['peer']['bytes'] / 2**20:.1f} MiB (built in {f['peer']['build_s']:.0f} s) | "
            f"{f['storage']['bytes'] / max(f['peer']['bytes'], 1):.1f}x |"
        )
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
