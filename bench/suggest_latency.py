"""Latency of suggestions while typing at 100k products: ``suggest()`` in process and ``GET /api/suggest/``
through HTTP, side by side with what a shop could call instead on every keystroke.

    python bench/suggest_latency.py --prefixes 100 --rounds 3   # 100k products by default

On a database from ``bench/scale_data.py`` (its ``FieldValue`` and ``Spelling`` tables brought up to date by
``indexing.values.refresh``, the sweep step, at the start). The prefixes are what a shopper has typed so far,
from the catalog's own values (product types, colors, brands) and the generator's adjectives, in five shapes
one after the other:

- ``1 word``: the first 1 to 5 letters of a product type, brand or color word ("sne", "k");
- ``2 words``: "<color> <part of a product type>" ("red sne");
- ``phrase``: a two-word product type, its second word cut ("hiking bo"): a value spanning the words;
- ``3 words``: "<adjective> <color> <part of a product type>" ("classic blue hik");
- ``typo``: "<product type with one edit> <part of a color>" ("snekers whi"): the head corrected first.

In process, each prefix asked with A = ``catalog_search.suggest(q, k=8)`` (4 products) and B right after
(which goes first alternates by prefix and round), B being one of:

- ``search(bm25)``: ``catalog_search.search(q, k=8, mode="bm25")``, a plain keyword search of the typed text
  (understanding on, facets; no vector, so no encoding): the cheapest search a page could send per keystroke;
- ``naive ILIKE``: products whose title contains every typed word (``title__icontains`` each, the last one
  partial), the first 4 and their count: what a shop without a suggester writes.

Through HTTP: gunicorn (``--config``, default 1 worker x 4 threads) serving ``GET /api/suggest/?q=...&k=8``,
one client sending the prefixes one after the other over keep-alive; client ms (request to last byte) and
the server's ``took_ms``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from urllib.parse import urlencode

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Server,
    ServerConfig,
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
from bench.understanding_ab import _misspell, ensure_values

HEADING = "## Suggestions while typing at 100k: suggest() and GET /api/suggest/ (bench/suggest_latency.py)"
SHAPES = ("1 word", "2 words", "phrase", "3 words", "typo")
TARGET_P95_MS = 15.0


def _cut(word: str, rng: random.Random) -> str:
    """The first letters of ``word`` a shopper has typed so far (1 to 5, never all of it)."""
    return word[: rng.randint(1, max(1, min(5, len(word) - 1)))]


def make_prefixes(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` distinct (prefix, shape) pairs from the catalog's values, the shapes in turn."""
    from catalog_search.analysis import get_analyzer
    from catalog_search.registry import get_indexes
    from catalog_search.retrieval.bm25 import known_terms
    from catalog_search.values import catalog_values
    from demo_project.shop.catalog import ADJECTIVES

    rng = random.Random(seed)
    (index,) = get_indexes()
    ct = index.content_type.pk
    present = catalog_values(ct)
    types = sorted(v.lower() for v in present.get("product_type", {}))
    colors = sorted(v.lower() for v in present.get("color", {}))
    brands = sorted(v.lower() for v in present.get("brand", {}))
    phrases = [t for t in types if len(t.split()) == 2 and len(t.split()[1]) > 2]
    if not (types and colors and brands and phrases):
        raise SystemExit("the FieldValue table has no product types, colors or brands: run values.refresh")
    analyzer = get_analyzer()
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        shape = SHAPES[len(out) % len(SHAPES)]
        kind = rng.choice(types)
        last = kind.split()[0]
        if shape == "1 word":
            q = _cut(rng.choice([last, rng.choice(brands).split()[0], rng.choice(colors)]), rng)
        elif shape == "2 words":
            q = f"{rng.choice(colors)} {_cut(last, rng)}"
        elif shape == "phrase":
            first, second = rng.choice(phrases).split()
            q = f"{first} {_cut(second, rng)}"
        elif shape == "3 words":
            q = f"{rng.choice(ADJECTIVES)} {rng.choice(colors)} {_cut(last, rng)}"
        else:
            words = [w for w in kind.split() if len(w) >= 5 and w.isalpha()]
            if not words:
                continue
            wrong = _misspell(words[0], rng)
            if known_terms(analyzer.terms(wrong), [ct]):  # the edit made another catalog word: not a typo
                continue
            q = f"{wrong} {_cut(rng.choice(colors), rng)}"
        if q not in seen:
            seen.add(q)
            out.append((q, shape))
    return out


def naive(q: str) -> tuple[list[int], int]:
    """Products whose title contains every typed word: the first 4 and how many."""
    from demo_project.shop.models import Product

    rows = Product.objects.all()
    for word in q.split():
        rows = rows.filter(title__icontains=word)
    return list(rows.order_by("pk").values_list("pk", flat=True)[:4]), rows.count()


def timed_call(fn) -> tuple[float, object]:
    started = time.perf_counter()
    answer = fn()
    return (time.perf_counter() - started) * 1000, answer


def http_latency(config: ServerConfig, env: dict[str, str], prefixes: list[str], rounds: int) -> dict:
    """Client ms and server took_ms of ``GET /api/suggest/`` for every prefix, ``rounds`` times."""
    log = Path(tempfile.mkdtemp(prefix="catalog-search-suggest-")) / "gunicorn.log"
    server = Server(config, env, log)
    server.start()
    client: list[float] = []
    took: list[float] = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for q in prefixes:  # warm up every code path and the database's pages
            _get(conn, q)
        for _ in range(rounds):
            for q in prefixes:
                ms, data = _get(conn, q)
                client.append(ms)
                took.append(float(data["took_ms"]))
        conn.close()
    finally:
        problems = server.log_problems()
        server.stop()
    return {"client": client, "took": took, "problems": problems}


def _get(conn: http.client.HTTPConnection, q: str) -> tuple[float, dict]:
    started = time.perf_counter()
    conn.request("GET", "/api/suggest/?" + urlencode({"q": q, "k": 8}))
    response = conn.getresponse()
    body = response.read()
    ms = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{q!r}: {response.status} {body[:300]!r}")
    return ms, json.loads(body)


def _row(label: str, values: list[float]) -> str:
    return (
        f"| {label} | {len(values)} | {fmt(percentile(values, 50), 1)} | {fmt(percentile(values, 95), 1)} "
        f"| {fmt(max(values), 1)} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prefixes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="times each prefix is asked per side")
    parser.add_argument("--config", default="1x4", help="gunicorn WORKERSxTHREADS for the HTTP part")
    parser.add_argument("--no-http", action="store_true")
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("suggest_latency.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    env = start(spec)
    setup_django(env)

    import catalog_search

    tables = ensure_values()
    print(f"FieldValue / Spelling: {tables}", flush=True)
    asked = make_prefixes(args.prefixes, args.seed + 11)
    prefixes = [q for q, _ in asked]
    shape_of = dict(asked)

    def a(q: str) -> tuple[float, object]:
        return timed_call(lambda: catalog_search.suggest(q, k=8))

    baselines = {
        "search(bm25)": lambda q: timed_call(lambda: catalog_search.search(q=q, k=8, mode="bm25")),
        "naive ILIKE": lambda q: timed_call(lambda: naive(q)),
    }
    answers = {q: catalog_search.suggest(q, k=8) for q in prefixes}  # warm-up, and what they answer
    for q in prefixes:
        for b in baselines.values():
            b(q)
    rows, alone = [], []
    for name, b in baselines.items():
        measured = side_by_side(prefixes, args.rounds, lambda side, q, b=b: a(q) if side == "a" else b(q))
        rows.append((name, *measured.row()))
        alone += measured.times["a"]
        print(f"suggest vs {name}: {rows[-1]}", flush=True)
    by_shape = {s: [] for s in SHAPES}
    order = [q for _ in range(args.rounds) for q in prefixes] * len(baselines)
    for q, ms in zip(order, alone, strict=True):
        by_shape[shape_of[q]].append(ms)
    http = None
    if not args.no_http:
        config = ServerConfig.parse(args.config)
        print(f"==> gunicorn {config}", file=sys.stderr, flush=True)
        http = http_latency(config, env, prefixes, args.rounds)

    heading = HEADING.replace("100k", f"{loaded['products'] // 1000}k")
    runs = f"{len(prefixes)} prefixes x {args.rounds} rounds per comparison, the two sides alternating per prefix"
    lines = section_header(heading, command, facts, versions(["gunicorn"]), runs)
    with_completion = sum(bool(found.completions) for found in answers.values())
    with_products = sum(bool(found.products) for found in answers.values())
    corrected = sum("corrected" in found.query for found in answers.values())
    examples = "; ".join(
        f"`{q}` -> " + (", ".join(f"{c.text} ({c.count})" for c in answers[q].completions[:2]) or "nothing")
        for q, _ in asked[: len(SHAPES)]
    )
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`); FieldValue / "
        f"Spelling tables {tables}.",
        f"- **Prefixes**: {len(prefixes)}, the shapes in turn ({', '.join(SHAPES)}). {with_completion} got "
        f"completions, {with_products} products; the head was corrected in {corrected}. Examples: {examples}.",
        "- **A**: `catalog_search.suggest(q, k=8)` (4 products), in process; **B**: `search(q, k=8, mode='bm25')`"
        " or the naive `title__icontains` query (module docstring). Settings of bench.settings (the demo's).",
        "",
        "**In process, side by side** (ms):",
        "",
        *ab_table(rows, first="B", digits=1),
        "",
        f"**`suggest()` alone, by shape** (every A call above, ms; target p95 <= {TARGET_P95_MS:.0f}):",
        "",
        "| shape | calls | p50 | p95 | max |",
        "|---|---:|---:|---:|---:|",
        *(_row(shape, by_shape[shape]) for shape in SHAPES),
        _row("**all**", alone),
    ]
    if http is not None:
        lines += [
            "",
            f"**Through HTTP** (`GET /api/suggest/?q=...&k=8`, gunicorn {args.config}, one client, keep-alive; ms):",
            "",
            "| measured | requests | p50 | p95 | max |",
            "|---|---:|---:|---:|---:|",
            _row("server `took_ms`", http["took"]),
            _row("client (request to last byte)", http["client"]),
        ]
        if http["problems"]:
            lines.append(f"\ngunicorn log problems: {len(http['problems'])} (first: `{http['problems'][0]}`)")
    p95 = percentile(http["took"] if http else alone, 95)
    verdict = "met" if p95 is not None and p95 <= TARGET_P95_MS else "missed"
    lines += ["", f"Target p95 <= {TARGET_P95_MS:.0f} ms server-side: **{verdict}** (p95 {fmt(p95, 1)} ms)."]
    print(f"median suggest ms: {median(alone):.2f}", flush=True)
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
