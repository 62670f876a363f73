"""The filtered vector search of an earlier git revision against this tree's, side by side in one process.

    python bench/vector_ab.py --products 100000 --base bec0e00~1

``retrieval/vector.py`` as it was at ``--base`` (read with ``git show`` and loaded as a module of its own) and
as it is now answer the latency benchmark's queries (``bench/search_latency.py``: two filters each, the
vector signal's ``CANDIDATES`` rows) on a ``bench/scale_data.py`` database, alternating which goes first per
query, with the query vectors of the random-weight model and catalog-like ones. Reported: p50 / p95 of the
filter count + ``vector.search`` (no keywords, no HTTP) per side, the median per-query ratio, and how many
queries got a different candidate list (an approximate walk may return other near-ties). For a change
inside ``vector.py`` that no setting switches; a setting is compared with ``bench/settings_ab.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlparse

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    ab_table,
    add_doc_arguments,
    machine_facts,
    note_text,
    publish,
    section_header,
    setup_django,
    shown_command,
    side_by_side,
    versions,
)
from bench.scale_data import ScaleSpec, ensure_loaded, start
from bench.search_latency import catalog_vectors, make_queries, model_vectors


def _module_at(revision: str) -> ModuleType:
    """``catalog_search/retrieval/vector.py`` as it was at ``revision``, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:catalog_search/retrieval/vector.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = ROOT / "var" / "bench" / "vector_base.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("vector_base", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["vector_base"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base", required=True, help="the git revision to compare with (A); B is this tree")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("vector_ab.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    setup_django(start(spec))

    from catalog_search import conf
    from catalog_search.models import Encoder
    from catalog_search.retrieval import vector
    from catalog_search.retrieval.filters import object_ids_sql, passing_check
    from catalog_search.retrieval.query import build_query

    sides = {"a": _module_at(args.base), "b": vector}
    row = Encoder.objects.get(state="active")
    pool, cap = conf.settings().CANDIDATES, conf.settings().EXACT_SEARCH_MAX_ROWS
    paths = make_queries(args.queries, random.Random(args.seed + 2), set())
    kinds = {"random-model": model_vectors(paths), "catalog-like": catalog_vectors(paths, seed=0)}

    def run(side: str, path: str, qvec) -> tuple[float, list[int]]:
        module = sides[side]
        params = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(urlparse(path).query).items()}
        params.pop("q")
        query = build_query(q="x", filters=params)
        index = query.indexes[0]
        filters = query.index_filters[index.label]
        filter_sql = object_ids_sql(index, filters)
        started = time.perf_counter()
        count = module.count_filtered(filter_sql, cap)
        hits = module.search(
            row.pk, row.dim, index.content_type.pk, qvec, {"image": 1.0}, filter_sql, pool,
            passing_check(index, filters), count, False,
        )  # fmt: skip
        return (time.perf_counter() - started) * 1000, [h.document_id for h in hits]

    rows = []
    for kind, qvecs in kinds.items():
        for path, qvec in list(zip(paths, qvecs, strict=True))[:5]:  # warm-up
            run("a", path, qvec)
            run("b", path, qvec)
        items = list(zip(paths, qvecs, strict=True))
        measured = side_by_side(items, args.rounds, lambda side, item: run(side, *item))
        row_ = (kind, *measured.row(), len(measured.different))
        rows.append(row_)
        print(f"{kind}: A p50 {row_[1]:.1f} p95 {row_[2]:.1f} | B p50 {row_[3]:.1f} p95 {row_[4]:.1f} | "
              f"A/B {row_[5]:.2f}x | {row_[6]} of {len(paths)} queries answered differently")  # fmt: skip

    heading = f"## Side by side: vector.py at {args.base} vs this tree (bench/vector_ab.py)"
    lines = section_header(
        heading,
        command,
        facts,
        versions(),
        f"{args.queries} queries x {args.rounds} rounds per kind of query vector, A and B alternating per query",
    )
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`).",
        f"- **A**: `retrieval/vector.py` at `{args.base}`; **B**: this tree's. Both get the same filter SQL and "
        "`filters.passing_check`; timed: the filter count and `vector.search` (`CANDIDATES` rows, the image column).",
        "",
        *ab_table([(*r[:6], f"{r[6]} of {len(paths)}") for r in rows], extra="queries answered differently"),
    ]
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
