"""Latency of similar products ("More like this") at 100k products: ``catalog_search.similar()`` side by side
with the nearest-neighbour statement a shop would write by hand with pgvector.

    python bench/similar_latency.py --products 60 --rounds 3   # a 100k-product catalog by default

On a database from ``bench/scale_data.py`` (synthetic CLIP-shaped vectors, every product with an image
vector). For each of ``--products`` random products, in process, A and B right after each other (which goes
first alternates by product and round):

- **unfiltered**: A = ``similar(product, k=12)``: the page, the facets over the 200 nearest and the total
  (``facets=0``: the same without the facets);
  B = one pgvector statement, the 13 nearest by the image vector through the same HNSW index
  (``ORDER BY image <=> v LIMIT 13``), the product dropped: the page alone, nothing else;
- **filtered**: the product's own category and in stock. A = ``similar(product, k=12, filters=...)`` (exact
  under the filter; the facets count the category over a second search without it, multi-select); B = the
  hand-written statement with the filter as a join on the shop's table, which
  pgvector answers from the HNSW walk with the filter applied to what it returns (its iterative scan on):
  the usual ORM way, which can return fewer than 12 or miss true neighbours. Its recall@12 against A is
  reported.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ab_table,
    add_doc_arguments,
    fmt,
    machine_facts,
    note_text,
    publish,
    section_header,
    setup_django,
    shown_command,
    side_by_side,
    timed_call,
    versions,
)
from bench.scale_data import ScaleSpec, ensure_loaded, start

HEADING = "## Similar products at 100k: similar() vs a hand-written pgvector query (bench/similar_latency.py)"
K = 12


def by_hand(product, *, filtered: bool) -> list[str]:
    """The 12 nearest other products by image vector in one pgvector statement (module docstring)."""
    from django.db import connection, transaction

    from catalog_search.models import Encoder

    row = Encoder.objects.get(state="active")
    join, where, params = "", "", []
    if filtered:
        join = "JOIN shop_product p ON p.id = e.object_id::bigint"
        where = "AND p.category = %s AND p.in_stock"
        params.append(product.category)
    source = f"(SELECT s.image FROM catalog_search_embedding s WHERE s.encoder_id = {int(row.pk)} AND s.object_id = %s)"
    sql = (
        f"SELECT e.object_id FROM catalog_search_embedding e {join} WHERE e.encoder_id = {int(row.pk)} "
        f"AND e.image IS NOT NULL {where} "
        f"ORDER BY e.image::vector({row.dim}) <=> {source}::vector({row.dim}) LIMIT {K + 1}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(sql, [*params, str(product.pk)])
        ids = [oid for (oid,) in cursor.fetchall()]
    return [oid for oid in ids if oid != str(product.pk)][:K]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=int, default=100_000, help="products in the benchmark database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--products", type=int, default=100, help="products asked about")
    parser.add_argument("--rounds", type=int, default=3)
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("similar_latency.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    spec = ScaleSpec(args.catalog, args.seed)
    loaded = ensure_loaded(spec)
    setup_django(start(spec))

    import catalog_search
    from demo_project.shop.models import Product

    rng = random.Random(args.seed + 29)
    ids = rng.sample(list(Product.objects.values_list("pk", flat=True)), args.products)
    products = list(Product.objects.filter(pk__in=ids).order_by("pk"))

    def filters(p) -> dict:
        return {"category": p.category, "in_stock": True}

    cases = {
        "unfiltered": (lambda p: catalog_search.similar(p, k=K), lambda p: by_hand(p, filtered=False)),
        "unfiltered, facets=0": (
            lambda p: catalog_search.similar(p, k=K, facets=False),
            lambda p: by_hand(p, filtered=False),
        ),
        "category + in stock, facets=0": (
            lambda p: catalog_search.similar(p, k=K, filters=filters(p), facets=False),
            lambda p: by_hand(p, filtered=True),
        ),
        "category + in stock": (
            lambda p: catalog_search.similar(p, k=K, filters=filters(p)),
            lambda p: by_hand(p, filtered=True),
        ),
    }
    rows, recall = [], {}
    for name, (a, b) in cases.items():
        for p in products:  # warm-up
            a(p), b(p)
        measured = side_by_side(
            products, args.rounds, lambda side, p, a=a, b=b: timed_call(lambda: a(p) if side == "a" else b(p))
        )
        found = [(len({str(h.id) for h in a(p)} & set(b(p))), len(a(p))) for p in products]
        recall[name] = sum(hit for hit, _ in found) / max(1, sum(n for _, n in found))
        rows.append((name, *measured.row(), fmt(recall[name], 3)))
        print(f"{name}: {rows[-1]}", flush=True)

    heading = HEADING.replace("100k", f"{loaded['products'] // 1000}k")
    runs = f"{len(products)} products x {args.rounds} rounds per case, A and B alternating per product"
    lines = section_header(heading, command, facts, versions(), runs)
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`), every one with an image "
        "vector. **A**: `catalog_search.similar(product, k=12[, filters])`; **B**: one hand-written pgvector "
        "statement (module docstring). Settings of bench.settings.",
        "",
        *ab_table(rows, extra="B's recall@12 of A", first="case", digits=1),
    ]
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
