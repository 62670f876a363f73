"""BM25 query time versus catalog size (10k, 100k, 1M documents' worth of postings), and why.

    python bench/bm25_scale.py --sizes 10000 100000 1000000 --runs 5

Databases come from ``bench/scale_data.py``: 10k and 100k products indexed through the real path; 1M =
the 100k real ones plus 9 copies made in SQL (products, documents, postings; df, N and total length
recounted). Every database runs its own embedded PostgreSQL; the script's Django connection is pointed
at each in turn, so all sizes are measured in the same run, interleaved: run 1 = 10k, 100k, 1M, run 2
= 10k, ... Times are per query (``retrieval.bm25.search`` with ``limit`` = CANDIDATES, what a search
request runs), median over the queries of a mix, then median over the runs.

Query mixes (analyzed with the catalog analyzer, terms picked from the 100k corpus' statistics):
rare terms (df 0.05-0.3% of the catalog), common terms (df > 10%), 2-3 term queries from the catalog
vocabulary ("red leather handbag"), and those same queries with a category filter.
Why it grows the way it does comes from EXPLAIN ANALYZE: rows scored per query = the sum of the
terms' df, which grows linearly with the catalog for a fixed vocabulary.
"""

from __future__ import annotations

import argparse
import json
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
            out[mix].append((text, get_analyzer().terms(text), (filter_sql, passing)))
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


def measure(queries, ct: int, limit: int) -> dict[str, float]:
    """Median ms per query of each mix (each query once, after one unmeasured pass)."""
    out = {}
    for mix, items in queries.items():
        for _text, terms, filtering in items:  # warm the cache: the steady state of a busy shop
            run_search(ct, terms, filtering, limit)
        times = []
        for _text, terms, filtering in items:
            start = time.perf_counter()
            run_search(ct, terms, filtering, limit)
            times.append((time.perf_counter() - start) * 1000)
        out[mix] = median(times)
    return out


def scored_rows(queries, ct: int) -> dict[str, float]:
    """Median over a mix's queries of the postings a query reads: the sum of its terms' df."""
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        for mix, items in queries.items():
            sums = []
            for _text, terms, _f in items:
                cursor.execute(
                    "SELECT coalesce(sum(df), 0) FROM catalog_search_termstat WHERE content_type_id = %s "
                    "AND term = ANY(%s)",
                    [ct, sorted(set(terms))],
                )
                sums.append(float(cursor.fetchone()[0]))
            out[mix] = median(sums)
    return out


def explain(ct: int, terms: list[str], filter_sql, limit: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of one BM25 query: execution time and rows read from postings / documents."""
    from django.db import connection

    from catalog_search.retrieval import bm25

    match = bm25.match(ct, terms)
    sql, params = bm25._sql(bm25.SCORED, filter_sql, match, grouped=True, tail=bm25.TOP_TAIL)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, {**params, "limit": limit})
        plan = cursor.fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
    rows: dict[str, int] = {}
    nodes: list[str] = []

    def walk(node: dict) -> None:
        name = node.get("Relation Name") or node.get("Index Name")
        nodes.append(node["Node Type"] + (f" {name}" if name else ""))
        rel = node.get("Relation Name", "")
        if rel in ("catalog_search_posting", "catalog_search_document"):
            rows[rel] = rows.get(rel, 0) + int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return {"ms": plan["Execution Time"], "rows": rows, "nodes": nodes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
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

    from catalog_search import conf
    from catalog_search.registry import get_index
    from demo_project.shop.models import Product

    limit = conf.settings().CANDIDATES
    raw = pick_queries(args.seed, args.per_mix)
    queries = prepared(raw)
    cts = {}
    for size in args.sizes:
        use_database(envs[size]["DATABASE_URL"])
        cts[size] = _scalar("SELECT id FROM django_content_type WHERE app_label = 'shop' AND model = 'product'")
    assert len(set(cts.values())) == 1, f"content type ids differ between databases: {cts}"
    ct = get_index(Product).content_type.pk
    times: dict[int, list[dict[str, float]]] = {size: [] for size in args.sizes}
    for run in range(1, args.runs + 1):
        for size in args.sizes:
            use_database(envs[size]["DATABASE_URL"])
            times[size].append(measure(queries, ct, limit))
            print(f"run {run} {size:>8}: " + "  ".join(f"{m} {v:.1f} ms" for m, v in times[size][-1].items()))
    facts_after = {}
    for size in args.sizes:
        use_database(envs[size]["DATABASE_URL"])
        example = {mix: queries[mix][0] for mix in MIXES}
        facts_after[size] = {
            "rows": scored_rows(queries, ct),
            "explain": {mix: explain(ct, terms, f[0], limit) for mix, (_t, terms, f) in example.items()},
            "software": versions(),
            "postings": _count("catalog_search_posting"),
            "documents": _count("catalog_search_document"),
            "terms": _count("catalog_search_termstat"),
        }
    med = {size: {mix: median(r[mix] for r in times[size]) for mix in MIXES} for size in args.sizes}
    print_table(args.sizes, med, facts_after)
    if not args.no_doc:
        section = render(args, command, facts, loaded, med, times, facts_after, queries, limit)
        write_section(args.doc, section, HEADING)
        print(f"Wrote '{HEADING}' in {args.doc}")
    return 0


def _scalar(sql: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


def _count(table: str) -> int:
    return _scalar(f"SELECT count(*) FROM {table}")


def print_table(sizes, med, facts_after) -> None:
    print(f"\n{'size':>9} " + " ".join(f"{m:>14}" for m in MIXES) + "   (median ms; median rows scored)")
    for size in sizes:
        cells = [f"{med[size][m]:>6.1f} / {facts_after[size]['rows'][m]:>6.0f}" for m in MIXES]
        print(f"{size:>9} " + " ".join(f"{c:>14}" for c in cells))


def render(args, command, facts, loaded, med, times, facts_after, queries, limit) -> str:
    sizes = args.sizes
    lines = section_header(
        HEADING,
        command,
        facts,
        facts_after[sizes[-1]]["software"],
        f"{args.runs} runs, sizes interleaved within each run; a cell is the median over runs of the median over "
        f"the {args.per_mix} queries of a mix.",
    )
    lines += [
        "- **Corpora** (`bench/scale_data.py`): "
        + "; ".join(
            f"{s:,} products = {facts_after[s]['documents']:,} documents, {facts_after[s]['postings']:,} postings, "
            f"{facts_after[s]['terms']:,} distinct terms"
            + (f" ({loaded[s]['real']:,} indexed for real, the rest SQL copies)" if loaded[s]["real"] < s else "")
            for s in sizes
        )
        + ".",
        f"- **Query**: `catalog_search.retrieval.bm25.search(..., limit={limit})` (the candidate pool of a search "
        "request): term statistics -> postings, read from the posting primary key alone (tf, document length and "
        "object id are INCLUDE columns) -> score, group, top-k; with a filter, the bounded filter count first, and "
        "a filter keeping more than EXACT_SEARCH_MAX_ROWS objects is checked on the best unfiltered matches "
        "(docs/architecture.md, BM25).",
        "- **Mixes**: "
        + "; ".join(f"*{mix}*: " + ", ".join(f"`{t}`" for t, _terms, _f in queries[mix][:4]) + ", ..." for mix in MIXES)
        + " (the *multi+filter* queries add `category=<the type's category>`).",
        "",
        "| products | "
        + " | ".join(f"{m} ms" for m in MIXES)
        + " | "
        + " | ".join(f"{m} rows scored" for m in MIXES)
        + " |",
        "|---:|" + "---:|" * (2 * len(MIXES)),
    ]
    for s in sizes:
        lines.append(
            f"| {s:,} | "
            + " | ".join(f"{med[s][m]:.1f}" for m in MIXES)
            + " | "
            + " | ".join(f"{facts_after[s]['rows'][m]:,.0f}" for m in MIXES)
            + " |"
        )
    lines += ["", "Growth, side by side in the same run (ratio of medians):", ""]
    lines += ["| | " + " | ".join(MIXES) + " |", "|---|" + "---:|" * len(MIXES)]
    for a, b in zip(sizes, sizes[1:], strict=False):
        lines.append(
            f"| {b:,} / {a:,} ({b / a:g}x products) | "
            + " | ".join(f"{med[b][m] / med[a][m]:.1f}x time, {_ratio(facts_after, a, b, m)} rows" for m in MIXES)
            + " |"
        )
    lines += ["", "EXPLAIN ANALYZE of the first query of each mix (execution time; rows read from postings):", ""]
    lines += ["| products | " + " | ".join(MIXES) + " |", "|---:|" + "---|" * len(MIXES)]
    for s in sizes:
        cells = []
        for m in MIXES:
            e = facts_after[s]["explain"][m]
            cells.append(f"{e['ms']:.1f} ms; {e['rows'].get('catalog_search_posting', 0):,} postings")
        lines.append(f"| {s:,} | " + " | ".join(cells) + " |")
    big = sizes[-1]
    lines += [
        "",
        f"Plan at {big:,} (*common*, outermost node first): "
        + " → ".join(facts_after[big]["explain"]["common"]["nodes"])
        + ".",
        "",
        "Per-run medians (ms): "
        + "; ".join(
            f"{s:,}: "
            + ", ".join("/".join(f"{r[m]:.1f}" for r in times[s]) for m in MIXES)
            + " ("
            + ", ".join(MIXES)
            + ")"
            for s in sizes
        )
        + ".",
    ]
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


def _ratio(facts_after, a: int, b: int, mix: str) -> str:
    ra, rb = facts_after[a]["rows"][mix], facts_after[b]["rows"][mix]
    return f"{rb / ra:.1f}x" if ra else "-"


if __name__ == "__main__":
    sys.exit(main())
