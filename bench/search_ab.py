"""Two checkouts, each on its own copy of a benchmark database, side by side: the same in-process searches
asked of side A and side B one right after the other.

    python bench/search_ab.py --a-tree /tmp/before --a-bench-dir /tmp/before/var/bench \\
        --b-tree . --b-bench-dir /work/bench --products 100000 --queries 60 --rounds 3

For a change of code and storage together (a migration that rewrites index tables), where one database
cannot serve both: each side is a process started from its tree (``--serve``), with the database of
``bench/scale_data.py`` found in its bench folder (``BENCH_DIR``), brought up to date with that tree's
migrations. The driver sends each query to both (which goes first alternates per query and round) and
compares the answers: the same object ids in the same order and facet counts, unless ``--different``.
Searches: ``catalog_search.search(q, filters, k=20, mode=...)``, facets on; the queries of
bench/search_latency.py (catalog vocabulary, half with ``category`` + ``price__lte``, half with
``in_stock=true`` + ``price__gte``). Mode ``bm25`` by default: the keyword signal with its facet
statement, no query vector. Reported: each side's p50 / p95 and the median per-query A / B ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

if __package__ in (None, ""):  # a side runs this file with its own tree first on the path (AB_TREE)
    sys.path.insert(0, os.environ.get("AB_TREE") or str(Path(__file__).resolve().parent.parent))


def serve(products: int, seed: int) -> int:
    """Answer JSON lines {q, filters, mode} with {ms, ids, facets} until stdin closes."""
    from bench.common import setup_django
    from bench.scale_data import ScaleSpec, ensure_loaded, start

    spec = ScaleSpec(products, seed)
    ensure_loaded(spec)
    setup_django(start(spec))
    import catalog_search

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        started = time.perf_counter()
        result = catalog_search.search(q=ask["q"], filters=ask["filters"], k=20, mode=ask["mode"])
        ms = (time.perf_counter() - started) * 1000
        ids = [f"{r.type}:{r.id}" for r in result.results]
        total = result.total.as_dict()
        print(json.dumps({"ms": ms, "ids": ids, "total": total, "facets": _facets(result)}, default=str), flush=True)
    return 0


def _facets(result) -> dict:
    return {
        name: [[str(b.get("value", b.get("key"))), b.get("count")] for b in buckets]
        for name, buckets in result.facets.items()
    }


class Side:
    def __init__(self, tree: Path, bench_dir: str, args) -> None:
        env = {**os.environ, "BENCH_DIR": bench_dir, "AB_TREE": str(tree.resolve())}
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", "--products", str(args.products)]
        self.process = subprocess.Popen(
            command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"side {tree} exited before it was ready")
            if line.startswith("{"):
                assert json.loads(line)["ready"]
                break

    def ask(self, query: dict) -> dict:
        self.process.stdin.write(json.dumps(query) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def queries(count: int, seed: int) -> list[dict]:
    from demo_project.shop.artwork import TYPES
    from demo_project.shop.catalog import MATERIALS
    from demo_project.shop.photos import COLORS

    rng = random.Random(seed)
    out = []
    for n in range(count):
        art = rng.choice(TYPES)
        color = rng.choice(COLORS[rng.choice(list(COLORS))].terms)
        q = f"{color} {rng.choice(MATERIALS[art.materials])} {rng.choice(art.terms)}"
        if n % 2:
            filters = {"in_stock": "true", "price__gte": str(rng.choice([20, 50, 100]))}
        else:
            filters = {"category": art.category, "price__lte": str(rng.choice([50, 100, 200]))}
        out.append({"q": q, "filters": filters})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--a-tree", type=Path, default=Path("."))
    parser.add_argument("--b-tree", type=Path, default=Path("."))
    parser.add_argument("--a-bench-dir", default="")
    parser.add_argument("--b-bench-dir", default="")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", default="bm25")
    parser.add_argument("--different", action="store_true", help="the sides may answer differently")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.products, args.seed)
    asked = [{**q, "mode": args.mode} for q in queries(args.queries, args.seed)]
    sides = {"A": Side(args.a_tree, args.a_bench_dir, args), "B": Side(args.b_tree, args.b_bench_dir, args)}
    times: dict[str, list[float]] = {"A": [], "B": []}
    ratios, differ = [], 0
    for side in sides.values():  # one unmeasured pass each
        for query in asked:
            side.ask(query)
    for round_ in range(args.rounds):
        for n, query in enumerate(asked):
            order = ("A", "B") if (n + round_) % 2 == 0 else ("B", "A")
            got = {name: sides[name].ask(query) for name in order}
            times["A"].append(got["A"]["ms"])
            times["B"].append(got["B"]["ms"])
            ratios.append(got["A"]["ms"] / got["B"]["ms"])
            same = all(got["A"][key] == got["B"][key] for key in ("ids", "total", "facets"))
            differ += not same
            if not same and not args.different:
                raise SystemExit(f"the sides answer {query} differently:\n A {got['A']}\n B {got['B']}")
    for side in sides.values():
        side.close()
    for name in ("A", "B"):
        values = sorted(times[name])
        print(f"{name}: p50 {median(values):.1f} ms, p95 {values[int(0.95 * (len(values) - 1))]:.1f} ms")
    print(f"per-query A / B (median): {median(ratios):.2f}x; answered differently: {differ} of {len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
