"""What query expansion costs: two expansion settings side by side on the demo catalog's paraphrase queries.

    python bench/expansion_ab.py --a '{"EXPANSION_THESAURUS": null, "EXPANSION_TERMS": 1}' --b '{}'

Query expansion needs a real encoder's vocabulary and a catalog with words (the random-weight model and
the generated scale catalogs of the other benchmarks have neither), so this one runs on the demo shop:
its 2,000 products (``seed_demo_catalog``), indexed with the shipped demo encoder into a benchmark
database of its own (``var/bench/expansion-demo``, kept for the next run), the vocabulary built, and the
paraphrase queries of ``demo_judgments`` (words no product title uses: every query has unknown words).
In one process, each query is asked with settings A and with settings B one right after the other
(which goes first alternates), both on top of the demo's settings with ``QUERY_EXPANSION`` on: first
``words.expand()`` alone, then the whole hybrid ``catalog_search.search()`` (k 10, query embeddings
from an in-process cache warmed by one unmeasured pass, so the encoder's time for a new text is not in
it). Reported: p50 / p95 of each and the median per-query ratio A / B.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    ab_table,
    add_doc_arguments,
    bench_env,
    machine_facts,
    note_text,
    publish,
    section_header,
    setup_django,
    shown_command,
    side_by_side,
    start_postgres,
    versions,
)
from bench.scale_data import BENCH_DIR

DATA = BENCH_DIR / "expansion-demo"
ENCODER = ROOT / "demo_project" / "encoder"
BASE = {"QUERY_EXPANSION": True, "QUERY_CACHE": "default", "RRF_K": 5}  # the demo's, on bench.settings


def prepare(seed: int, queries: int) -> list[str]:
    """The demo catalog indexed and its vocabulary built (once), and ``queries`` paraphrase queries."""
    from django.core.management import call_command
    from django.test import override_settings

    from catalog_search.offline.evaluation import load_judgments
    from demo_project.shop.judgments import generate_judgments
    from demo_project.shop.models import Product

    call_command("migrate", verbosity=0)
    if not Product.objects.exists():
        print("Seeding and indexing the demo catalog (a few minutes, once) ...", flush=True)
        call_command("seed_demo_catalog")
        call_command("catalog_search", "reindex", "--all", "--sync")
    with override_settings(CATALOG_SEARCH=_merged({})):
        call_command("catalog_search", "vocabulary")
    counts = {"plain": 0, "synonym": 0, "paraphrase": queries, "photo": 0, "photo+text": 0, "typo": 0, "price": 0}
    path = generate_judgments(DATA / "judgments", seed=seed, counts=counts, name=f"paraphrase-s{seed}-{queries}")
    return [j.q for j in load_judgments(path) if j.q]


def _merged(settings: dict) -> dict:
    from django.conf import settings as django_settings

    return {**django_settings.CATALOG_SEARCH, **BASE, **settings}


@contextlib.contextmanager
def _using(settings: dict) -> Iterator[None]:
    from django.test import override_settings

    with override_settings(CATALOG_SEARCH=_merged(settings)):
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=json.loads, required=True, help="CATALOG_SEARCH settings A, as JSON")
    parser.add_argument("--b", type=json.loads, required=True, help="CATALOG_SEARCH settings B, as JSON")
    parser.add_argument("--seed", type=int, default=1, help="of the paraphrase queries (demo_judgments)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="times each query is asked with A and with B")
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("expansion_ab.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    setup_django(bench_env(start_postgres(DATA / "pgdata"), DATA / "var", ENCODER))

    import catalog_search
    from catalog_search.encoding.active import active_encoder
    from catalog_search.registry import get_indexes
    from catalog_search.retrieval.expansion import words

    texts = prepare(args.seed, args.queries)
    row, encoder = active_encoder()
    indexes = get_indexes()
    sides = {"a": args.a, "b": args.b}

    def expand(side: str, q: str) -> tuple[float, dict]:
        with _using(sides[side]):
            started = time.perf_counter()
            found = words.expand(q, indexes, row, encoder)
            return (time.perf_counter() - started) * 1000, found.added

    def search(side: str, q: str) -> tuple[float, list]:
        with _using(sides[side]):
            started = time.perf_counter()
            results = catalog_search.search(q=q, k=10)
            return (time.perf_counter() - started) * 1000, [hit.id for hit in results]

    for side in "ab":  # warm-up: query embeddings cached, WordNet's pages read, lemma terms cached
        for q in texts:
            search(side, q)
    measured = {
        "expand()": side_by_side(texts, args.rounds, expand),
        "search()": side_by_side(texts, args.rounds, search),
    }

    label = " vs ".join(", ".join(f"{k} {v!r}" for k, v in s.items()) or "library defaults" for s in (args.a, args.b))
    heading = f"## Query expansion cost: {label} (bench/expansion_ab.py)"
    runs = (
        f"{len(texts)} paraphrase queries (demo_judgments seed {args.seed}) x {args.rounds} rounds, A and B alternating"
    )
    lines = section_header(heading, command, facts, versions(), runs)
    lines += [
        f"- **Catalog**: the demo's 2,000 products and encoder; base settings {BASE} on bench.settings; "
        f"A: {args.a or 'the library defaults'}; B: {args.b or 'the library defaults'}.",
        "",
        *ab_table(
            [(name, *result.row(), f"{len(result.different)} of {len(texts)}") for name, result in measured.items()],
            extra="queries answered differently",
            first="timed",
            digits=1,
        ),
    ]
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
