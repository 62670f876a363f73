"""What recording search analytics adds to a search: ``GET /api/search/`` with ANALYTICS off (A) and on (B).

    python bench/analytics_ab.py --queries 100 --rounds 3   # on the 100k-product database of scale_data.py

In one process, through Django's test client (the whole API view: parameters, search, serialization,
and with B the analytics record and the writer thread writing it every ``ANALYTICS_FLUSH_SECONDS``, on
its own connection, inside the same measured time), each query asked with A and B one right after the
other, which goes first alternating by query and round. The query vector is injected (a warm query cache),
the same for both. Reported: p50 / p95 per side, the per-query ratio, the milliseconds B - A of each pair
(target: at most 1 ms p50, issue #23), and how many rows the writer wrote and how long its writes took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

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

HEADING = "## Search analytics: recording on vs off (bench/analytics_ab.py)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("analytics_ab.py", argv)
    facts = machine_facts()
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    setup_django(start(spec))

    from django.conf import settings as django_settings
    from django.test import Client, override_settings

    from bench.understanding_ab import make_queries
    from catalog_search.analytics import record
    from catalog_search.encoding.active import active_encoder
    from catalog_search.models import SearchEvent
    from catalog_search.retrieval import query_cache

    texts = [s.q for s in make_queries(args.queries, args.seed + 5)]
    _, encoder = active_encoder()
    vectors = dict(zip(texts, encoder.encode_texts(texts), strict=True))
    current: dict[str, str] = {}
    query_cache.text_vector = lambda encoder, text: vectors[current["q"]]
    client = Client(HTTP_X_SEARCH_VISITOR="bench-visitor", HTTP_HOST="127.0.0.1")
    writes: list[tuple[float, int]] = []  # (ms, rows) of each write of the buffer
    real_flush = record.Buffer.flush

    def timed_flush(self: record.Buffer) -> int:
        started = time.perf_counter()
        rows = real_flush(self)
        if rows:
            writes.append(((time.perf_counter() - started) * 1000, rows))
        return rows

    record.Buffer.flush = timed_flush  # type: ignore[method-assign]
    base = {**django_settings.CATALOG_SEARCH, "THROTTLE_TEXT": None}

    def ask(side: str, q: str) -> tuple[float, object]:
        current["q"] = q
        with override_settings(CATALOG_SEARCH={**base, "ANALYTICS": side == "b"}):
            started = time.perf_counter()
            response = client.get("/api/search/", {"q": q, "k": "20"})
            ms = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content[:200]
        body = response.json()
        return ms, [hit["id"] for hit in body["results"]]

    before = SearchEvent.objects.count()
    for q in texts:  # warm-up
        ask("a", q)
        ask("b", q)
    measured = side_by_side(texts, args.rounds, ask)
    record.flush()
    added = [b - a for a, b in zip(measured.times["a"], measured.times["b"], strict=True)]
    recorded = SearchEvent.objects.count() - before
    written = sum(rows for _, rows in writes)
    print(f"A p50 {percentile(measured.times['a'], 50):.2f} | B p50 {percentile(measured.times['b'], 50):.2f} | "
          f"added p50 {median(added):.3f} ms | {recorded} rows recorded, {len(writes)} writes", flush=True)  # fmt: skip
    SearchEvent.objects.filter(visitor="bench-visitor").delete()

    runs = f"{len(texts)} shopper queries x {args.rounds} rounds, the two sides alternating per query"
    lines = section_header(HEADING, command, facts, versions(), runs)
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`).",
        "- **Requests**: `GET /api/search/?q=...&k=20` through Django's test client in process (the whole view: "
        "parameters, search, serialization), hybrid, facets on, the query vector injected; throttling off.",
        '- **A**: `{"ANALYTICS": false}`; **B**: the default (on), `ANALYTICS_FLUSH_SECONDS` 1: the writer '
        "thread wrote while the requests ran, inside the measured time.",
        f"- **Queries**: {len(texts)}, the shapes of bench/understanding_ab.py (values, price, brand+range, typo, plain).",
        "",
        *ab_table([("API search", *measured.row())], first="requests", digits=2),
        "",
        f"Milliseconds recording adds to a search (B - A of each pair): median **{fmt(median(added), 3)}**, "
        f"p95 {fmt(percentile(added, 95), 3)}. The writer wrote {written:,} rows in {len(writes)} statements "
        f"(median {fmt(median([ms for ms, _ in writes]) if writes else None, 2)} ms a statement, "
        f"{fmt(median([rows for _, rows in writes]) if writes else None, 0)} rows); "
        f"{recorded:,} searches were recorded for the {len(added) + len(texts):,} asked with B.",
    ]
    publish(lines, note_text(args.note, args.note_file), args.doc, HEADING, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
