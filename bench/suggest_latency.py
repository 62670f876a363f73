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

``--before-tree PATH`` (another checkout, e.g. ``git worktree add --detach /tmp/before main``) measures a
change of the code side by side with the code before it, on the same database in the same minutes:

- in process, one more comparison: that checkout's ``suggest(q, k=8)`` and this one's, each in a fresh
  process of its own (the prefix sent over a pipe, the call timed in that process), so that neither carries
  this process's heap (the searches of the other comparisons); both must answer the same (everything but
  ``took_ms``);
- through HTTP, a second gunicorn serving that checkout, each prefix asked of both servers one right after
  the other, which one first alternating by prefix and round.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from urllib.parse import urlencode

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
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
    timed_call,
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


# A checkout's suggest(), in a process of its own: a prefix per line in, ms and the answer out.
_BEFORE_WORKER = """
import json, sys, time
out, sys.stdout = sys.stdout, sys.stderr  # whatever setup prints stays off the answers' pipe
import django
django.setup()
import catalog_search
for line in sys.stdin:
    started = time.perf_counter()
    found = catalog_search.suggest(json.loads(line), k=8)
    ms = (time.perf_counter() - started) * 1000
    answer = found.as_dict()
    answer.pop("took_ms")
    out.write(json.dumps({"ms": ms, "answer": answer}) + "\\n")
    out.flush()
"""


class SuggestProcess:
    """``suggest()`` of the checkout ``tree``, asked over a pipe and timed in its own process."""

    def __init__(self, tree: Path, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BEFORE_WORKER],
            cwd=tree,
            env={**os.environ, **env, "PYTHONPATH": str(tree)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, q: str) -> tuple[float, dict]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(q) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the --before-tree process exited with {self.process.wait()}")
        got = json.loads(line)
        return got["ms"], got["answer"]

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(30)


def _commit(tree: Path) -> str:
    """The short commit a checkout is at (its path when git cannot say)."""
    found = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or str(tree)


def http_latency(
    config: ServerConfig, env: dict[str, str], prefixes: list[str], rounds: int, trees: dict[str, Path]
) -> dict[str, dict]:
    """Client ms and server took_ms of ``GET /api/suggest/`` for every prefix, ``rounds`` times, of a server
    per checkout in ``trees`` (side -> tree), each prefix asked of every side in turn (which one first
    alternating by prefix and round)."""
    tmp = Path(tempfile.mkdtemp(prefix="catalog-search-suggest-"))
    servers = {side: Server(config, env, tmp / f"gunicorn-{side}.log", root=tree) for side, tree in trees.items()}
    out: dict[str, dict] = {side: {"client": [], "took": [], "problems": []} for side in trees}
    try:
        for server in servers.values():
            server.start()
        conns = {side: http.client.HTTPConnection("127.0.0.1", s.port, timeout=60) for side, s in servers.items()}
        for q in prefixes:  # warm up every code path and the database's pages
            for conn in conns.values():
                _get(conn, q)
        sides = list(trees)
        for round_ in range(rounds):
            for i, q in enumerate(prefixes):
                for side in sides if (i + round_) % 2 == 0 else sides[::-1]:
                    ms, data = _get(conns[side], q)
                    out[side]["client"].append(ms)
                    out[side]["took"].append(float(data["took_ms"]))
        for conn in conns.values():
            conn.close()
    finally:
        for side, server in servers.items():
            out[side]["problems"] = server.log_problems()
            server.stop()
    return out


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
    parser.add_argument("--before-tree", type=Path, help="also measure this checkout's code (module docstring)")
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    before_tree = args.before_tree.resolve() if args.before_tree else None
    if before_tree is not None and not (before_tree / "catalog_search" / "__init__.py").is_file():
        raise SystemExit(f"--before-tree {before_tree}: not a checkout of this project")
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
    # With the code before: each code's suggest() in a process of its own (module docstring).
    workers = {"a": SuggestProcess(ROOT, env), "b": SuggestProcess(before_tree, env)} if before_tree else {}
    before_name = f"`suggest()` of {_commit(before_tree)}" if before_tree else ""
    if workers:
        baselines[before_name] = workers["b"].ask
    answers = {q: catalog_search.suggest(q, k=8) for q in prefixes}  # warm-up, and what they answer
    for q in prefixes:
        for b in [*baselines.values(), *([workers["a"].ask] if workers else [])]:
            b(q)
    rows, alone, paired, before_alone, different = [], [], [], [], set()
    for name, b in baselines.items():
        if name == before_name:  # the same question: the answers are compared too
            measured = side_by_side(prefixes, args.rounds, lambda side, q: workers[side].ask(q))
            paired, before_alone, different = measured.times["a"], measured.times["b"], measured.different
        else:
            measured = side_by_side(prefixes, args.rounds, lambda side, q, b=b: a(q) if side == "a" else b(q))
        rows.append((name, *measured.row()))
        if name != before_name:
            alone += measured.times["a"]
        print(f"suggest vs {name}: {rows[-1]}", flush=True)
    for worker in workers.values():
        worker.stop()
    by_shape: dict[str, list[float]] = {s: [] for s in SHAPES}
    order = [q for _ in range(args.rounds) for q in prefixes]
    for q, ms in zip(order * (len(baselines) - bool(workers)), alone, strict=True):
        by_shape[shape_of[q]].append(ms)
    # With the code before: each side's calls of that comparison only, asked in turn in the same minutes
    # (an A call right after a search(bm25) or a naive scan finds colder caches).
    pairs: dict[str, dict[str, list[float]]] = {s: {"a": [], "b": []} for s in SHAPES}
    for q, ms_a, ms_b in zip(order if before_alone else [], paired, before_alone, strict=True):
        pairs[shape_of[q]]["a"].append(ms_a)
        pairs[shape_of[q]]["b"].append(ms_b)
    http = None
    if not args.no_http:
        config = ServerConfig.parse(args.config)
        print(f"==> gunicorn {config}", file=sys.stderr, flush=True)
        trees = {"before": before_tree, "after": ROOT} if before_tree else {"after": ROOT}
        http = http_latency(config, env, prefixes, args.rounds, trees)

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
        " or the naive `title__icontains` query (module docstring)"
        + (
            f"; last row: A is this code's `suggest()` and B the code before's (commit {_commit(before_tree)}, "
            f"`--before-tree`), each in a fresh process of its own; answered differently: {len(different)} of "
            f"{len(prefixes)} prefixes"
            if before_tree
            else ""
        )
        + ". Settings of bench.settings (the demo's).",
        "",
        "**In process, side by side** (ms):",
        "",
        *ab_table(rows, first="B", digits=1),
        "",
    ]
    if before_alone:
        lines += [
            f"**`suggest()` by shape, this code and the code before** (the calls of their comparison above, "
            f"ms; target p95 <= {TARGET_P95_MS:.0f}):",
            "",
            "| shape | calls | p50 | p95 | max | before: calls | p50 | p95 | max |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *(_row(shape, pairs[shape]["a"]) + _row("", pairs[shape]["b"])[4:] for shape in SHAPES),
            _row("**all**", paired) + _row("", before_alone)[4:],
        ]
    else:
        lines += [
            f"**`suggest()` alone, by shape** (every A call above, ms; target p95 <= {TARGET_P95_MS:.0f}):",
            "",
            "| shape | calls | p50 | p95 | max |",
            "|---|---:|---:|---:|---:|",
            *(_row(shape, by_shape[shape]) for shape in SHAPES),
            _row("**all**", alone),
        ]
    if http is not None:
        served = "two servers, this code and the code before, each prefix asked of both in turn" if before_tree else ""
        lines += [
            "",
            f"**Through HTTP** (`GET /api/suggest/?q=...&k=8`, gunicorn {args.config}, one client, keep-alive"
            + (f"; {served}" if served else "")
            + "; ms):",
            "",
            "| measured | requests | p50 | p95 | max |",
            "|---|---:|---:|---:|---:|",
        ]
        for side, got in http.items():
            label = (
                f" (code before, {_commit(before_tree)})" if side == "before" else " (this code)" if before_tree else ""
            )
            lines += [
                _row(f"server `took_ms`{label}", got["took"]),
                _row(f"client (request to last byte){label}", got["client"]),
            ]
            if got["problems"]:
                lines.append(f"\ngunicorn log problems{label}: {len(got['problems'])} (first: `{got['problems'][0]}`)")
    p95 = percentile(http["after"]["took"] if http else alone, 95)
    verdict = "met" if p95 is not None and p95 <= TARGET_P95_MS else "missed"
    lines += ["", f"Target p95 <= {TARGET_P95_MS:.0f} ms server-side: **{verdict}** (p95 {fmt(p95, 1)} ms)."]
    print(f"median suggest ms: {median(alone):.2f}", flush=True)
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
