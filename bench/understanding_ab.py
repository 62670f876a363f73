"""What query understanding costs at 100k products: shopper queries with it off (A) and on (B), side by side.

    python bench/understanding_ab.py --queries 100 --rounds 3   # 100k products by default

In one process, on a database from ``bench/scale_data.py`` (its ``FieldValue`` and ``Spelling`` tables
brought up to date by ``indexing.values.refresh``, the sweep step, at the start): ``catalog_search.search()``
(hybrid, ``k`` 20, facets, no filters), each query asked with ``QUERY_UNDERSTANDING`` off and on one right
after the other (which goes first alternates by query and round), so both see the same machine load. The
query vector is injected (as with a warm query cache), the same for A and B: the random-weight model's
embedding of the query as typed, and a catalog-like one (``scale_data.VectorModel``, text side, from what
the query names). Understanding changes the search itself (a price phrase becomes a filter, the candidates
are re-ranked), so the answers differ. A second comparison isolates the understanding steps: off, but
asked what ``parse`` understands by hand (the text without its price phrase and with its corrections, the
price bounds as filters) vs on: the same search, minus parse, apply and re-rank.

The queries are built from the catalog's own values (``catalog_search.values.catalog_values``: the
``FieldValue`` rows) and the index's ``QueryField`` synonyms, in five shapes, one after the other:

- ``values``: "<color or color synonym> <product type synonym>" ("crimson tote");
- ``price``: "<product type> under <price>" ("backpack under 50");
- ``brand+range``: "<brand> <product type> between <low> and <high>" ("Kestrel sneakers between 20 and 40");
- ``typo``: one of the three above with one edit (deletion, transposition, substitution, insertion) in a
  word of five letters or more, a word no document has ("crimson toet", "backpakc under 50");
- ``plain``: "<adjective> <material>" ("sturdy canvas"): nothing to recognise, no price.

Reported: p50 / p95 of A and B and the per-query ratio A / B, per kind of query vector and comparison; the
milliseconds understanding adds (B - A of each pair), overall and per shape; and, timed inside B's searches, the
understanding steps alone: ``understanding.parse.parse`` (with its statements: the term look-up
``bm25.Presence._look_up``, which expansion and the keyword signal then reuse, so timed wherever it runs;
the typo look-up ``typos.corrections``, ``values.matcher``), ``understand._apply`` (the hard filters) and
``boost.rerank`` (with ``results_kind``, the kind voted by the best results when a word names no value,
the vote's statement ``boost._values``, and the re-rank's, ``boost._matching``).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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

HEADING = "## Query understanding cost at 100k: QUERY_UNDERSTANDING off vs on (bench/understanding_ab.py)"
SHAPES = ("values", "price", "brand+range", "typo", "plain")
PRICES = (25, 30, 40, 50, 60, 75, 100, 150, 200)


@dataclass
class Shopper:
    """One query: its text, its shape and what it names (for its catalog-like vector)."""

    q: str
    shape: str
    row: dict[str, str] = field(default_factory=dict)


# Queries ----------------------------------------------------------------------------------------------


def _words_for(value: str, synonyms: dict[str, str | list[str]]) -> list[str]:
    """The words a shopper may use for ``value``: the value itself and the QueryField synonyms naming it."""
    out = [value.lower()]
    for word, targets in synonyms.items():
        if value in ([targets] if isinstance(targets, str) else targets):
            out.append(word.lower())
    return out


def _misspell(word: str, rng: random.Random) -> str:
    """``word`` with one edit: a deletion, an adjacent transposition, a substitution or an insertion."""
    i = rng.randrange(1, len(word) - 1)  # never the first letter: shoppers rarely miss it
    kind = rng.randrange(4)
    letter = rng.choice("aeioustrnl")
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 2:
        return word[:i] + (letter if letter != word[i] else "k") + word[i + 1 :]
    return word[:i] + letter + word[i:]


def make_queries(n: int, seed: int) -> list[Shopper]:
    """``n`` distinct shopper queries from the catalog's values, the shapes in turn (module docstring)."""
    from catalog_search.analysis import get_analyzer
    from catalog_search.registry import get_indexes
    from catalog_search.retrieval.bm25 import known_terms
    from catalog_search.values import catalog_values
    from demo_project.shop.artwork import TYPES
    from demo_project.shop.catalog import ADJECTIVES, MATERIALS

    rng = random.Random(seed)
    (index,) = get_indexes()
    ct = index.content_type.pk
    present = catalog_values(ct)
    fields = {f.name: f for f in index.understood_fields}
    by_noun = {t.noun: t for t in TYPES}
    types = sorted(v for v in present.get("product_type", {}) if v in by_noun)
    colors = sorted(present.get("color", {}))
    brands = sorted(present.get("brand", {}))
    if not (types and colors and brands):
        raise SystemExit("the FieldValue table has no product types, colors or brands: run values.refresh")
    materials = sorted({m for group in MATERIALS.values() for m in group if " " not in m and "-" not in m})
    analyzer = get_analyzer()
    out: list[Shopper] = []
    seen: set[str] = set()
    while len(out) < n:
        shape = SHAPES[len(out) % len(SHAPES)]
        base = shape if shape != "typo" else SHAPES[(len(out) // len(SHAPES)) % 3]
        noun = rng.choice(types)
        art = by_noun[noun]
        row = {"category": art.category, "type": art.slug}
        type_word = rng.choice(_words_for(noun, fields["product_type"].synonyms))
        if base == "values":
            color = rng.choice(colors)
            row["color"] = color
            q = f"{rng.choice(_words_for(color, fields['color'].synonyms))} {type_word}"
        elif base == "price":
            q = f"{type_word} under {rng.choice(PRICES)}"
        elif base == "brand+range":
            brand = rng.choice(brands)
            row["brand"] = brand
            low, high = art.price
            a = rng.choice([p for p in (10, 15, 20, 25, 30, 40, 50, 75, 100) if p < high] or [low])
            b = rng.choice([p for p in (40, 50, 60, 80, 100, 150, 200, 300) if p > a] or [a + 20])
            q = f"{brand} {type_word} between {a} and {b}"
        else:  # plain
            q = f"{rng.choice(ADJECTIVES)} {rng.choice(materials)}"
            row = {}
        if shape == "typo":
            words = [w for w in q.split() if len(w) >= 5 and w.isalpha()]
            if not words:
                continue
            typed = rng.choice(words)
            wrong = _misspell(typed.lower(), rng)
            if known_terms(analyzer.terms(wrong), [ct]):  # the edit made another catalog word: not a typo
                continue
            q = " ".join(wrong if w == typed else w for w in q.split())
        if q.lower() not in seen:
            seen.add(q.lower())
            out.append(Shopper(q, shape, row))
    return out


# Timing the steps -------------------------------------------------------------------------------------


class StepTimer:
    """Wall times of some functions, per search of side B: ``patch`` wraps them in place."""

    def __init__(self) -> None:
        self.current: dict[str, float] | None = None  # the search being timed: step -> ms
        self.searches: list[dict[str, float]] = []

    def begin(self) -> None:
        self.current = {}

    def end(self) -> None:
        if self.current is not None:
            self.searches.append(self.current)
        self.current = None

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.current is not None:
                    self.current[name] = self.current.get(name, 0.0) + (time.perf_counter() - started) * 1000

        return timed

    @contextlib.contextmanager
    def patch(self, targets: dict[str, tuple[object, str]]) -> Iterator[None]:
        saved = [(obj, attr, getattr(obj, attr)) for obj, attr in targets.values()]
        try:
            for name, (obj, attr) in targets.items():
                setattr(obj, attr, self.wrap(name, getattr(obj, attr)))
            yield
        finally:
            for obj, attr, fn in saved:
                setattr(obj, attr, fn)


def _targets() -> dict[str, tuple[object, str]]:
    """step name -> (module, function) as the code that calls it looks it up."""
    from catalog_search.retrieval import bm25, boost, understand
    from catalog_search.retrieval.understanding import typos, values

    return {
        "parse": (understand, "parse"),
        "  Presence._look_up (SQL; in parse, the search's one look-up of its terms)": (bm25.Presence, "_look_up"),
        "  typos.corrections (SQL)": (typos, "corrections"),
        "  values.matcher": (values, "matcher"),
        "_apply (hard filters)": (understand, "_apply"),
        "rerank": (boost, "rerank"),
        "  results_kind (the kind voted by the best results)": (boost, "results_kind"),
        "  boost._values (the vote's statement, for voters the facet counts did not read)": (boost, "_values"),
        "  boost._having (the re-rank's test of the candidates' values)": (boost, "_having"),
        "  boost._matching (its statement, for candidates the facet counts did not read)": (boost, "_matching"),
    }


def reload_cost(repeat: int) -> dict[str, list[float]]:
    """ms the first search after a reload of the values pays (``values.matcher`` then): every
    ``VALUES_REFRESH_SECONDS`` the FieldValue read ("stale"), and after a change of the set of values, or
    a writer's ``values.forget``, the matcher's rebuild as well ("forgotten")."""
    import dataclasses

    from catalog_search import values as catalog_values
    from catalog_search.registry import get_indexes
    from catalog_search.retrieval.understanding import values

    indexes = list(get_indexes())
    out: dict[str, list[float]] = {"stale": [], "forgotten": []}
    for _ in range(repeat):
        for case in out:
            if case == "forgotten":
                catalog_values.forget()
            else:
                for ct, copy in list(catalog_values._loaded.items()):
                    catalog_values._loaded[ct] = dataclasses.replace(copy, loaded_at=float("-inf"))
            started = time.perf_counter()
            values.matcher(indexes)
            out[case].append((time.perf_counter() - started) * 1000)
    return out


def _by_hand(understood, indexes) -> tuple[str, dict[str, str]]:
    """The search ``parse`` makes of a query, asked explicitly: its text (price phrase out, corrections in)
    and its price bounds as filters."""
    price = next(index.price_field for index in indexes if index.price_field)
    filters = {f"{price}__{bound.lookup}": str(bound.value) for bound in understood.bounds}
    return understood.text or "", filters


# Main -------------------------------------------------------------------------------------------------


def ensure_values() -> str:
    """The sweep step once (``indexing.values.refresh``): exact FieldValue counts, and the Spelling rows of
    a database loaded before query understanding existed."""
    from catalog_search.indexing import values
    from catalog_search.models import FieldValue, Spelling
    from catalog_search.registry import get_indexes

    started = time.perf_counter()
    done = values.refresh(get_indexes())
    return (
        f"refreshed by `values.refresh` in {time.perf_counter() - started:.1f} s ({done}; "
        f"{FieldValue.objects.count():,} values, {Spelling.objects.count():,} spellings)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="times each query is asked with A and with B")
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    command = shown_command("understanding_ab.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    setup_django(start(spec))

    import numpy as np
    from django.conf import settings as django_settings
    from django.test import override_settings

    import catalog_search
    from bench.scale_data import VectorModel
    from catalog_search.encoding.active import active_encoder
    from catalog_search.registry import get_indexes
    from catalog_search.retrieval import query_cache
    from catalog_search.retrieval.understanding.parse import parse

    tables = ensure_values()
    print(f"FieldValue / Spelling: {tables}", flush=True)
    queries = make_queries(args.queries, args.seed + 5)
    texts = [s.q for s in queries]
    _, encoder = active_encoder()
    model = VectorModel(1)
    kinds = {
        "random-model": dict(zip(texts, encoder.encode_texts(texts), strict=True)),
        "catalog-like": dict(
            zip(
                texts,
                model.vectors([s.row for s in queries], "text", np.random.default_rng([args.seed, 7])),
                strict=True,
            )
        ),
    }
    indexes = list(get_indexes())
    understood = {s.q: parse(s.q, indexes) for s in queries}
    by_hand = {q: _by_hand(u, indexes) for q, u in understood.items()}

    current: dict = {}  # the query being searched and its vectors: its vector, whatever text understanding leaves
    real_text_vector = query_cache.text_vector
    timer = StepTimer()

    def ask(side: str, q: str, timing: bool) -> tuple[float, tuple]:
        """(ms, answer) of ``q`` asked with understanding off, on, or off with what it understands given."""
        current["q"] = q
        text, filters = by_hand[q] if side == "hand" else (q, {})
        settings = {**django_settings.CATALOG_SEARCH, "QUERY_UNDERSTANDING": side == "on"}
        with override_settings(CATALOG_SEARCH=settings):
            if timing and side == "on":
                timer.begin()
            started = time.perf_counter()
            results = catalog_search.search(q=text, filters=filters, k=20)
            ms = (time.perf_counter() - started) * 1000
            timer.end()
        return ms, ([(hit.id, round(hit.score, 9)) for hit in results], results.facets)

    comparisons = {"off": "understanding off vs on", "hand": "off, understood parts given by hand vs on"}
    rows: dict[str, list[tuple]] = {c: [] for c in comparisons}
    added: dict[tuple[str, str], list[float]] = {}
    shapes = [s.shape for _ in range(args.rounds) for s in queries]
    query_cache.text_vector = lambda encoder, text: current["vectors"][current["q"]]
    try:
        with timer.patch(_targets()):
            for kind, vectors in kinds.items():
                current["vectors"] = vectors
                for q in texts:  # warm-up: WordNet's pages, the matcher, every code path
                    for side in ("off", "on", "hand"):
                        ask(side, q, False)
                for base in comparisons:
                    sides = {"a": base, "b": "on"}
                    measured = side_by_side(texts, args.rounds, lambda side, q, s=sides: ask(s[side], q, True))
                    row = (kind, *measured.row(), f"{len(measured.different)} of {len(texts)}")
                    rows[base].append(row)
                    added[(kind, base)] = [b - a for a, b in zip(measured.times["a"], measured.times["b"], strict=True)]
                    print(f"{kind}, {base} vs on: A p50 {row[1]:.1f} p95 {row[2]:.1f} | B p50 {row[3]:.1f} "
                          f"p95 {row[4]:.1f} | A/B {row[5]:.2f}x | added p50 {median(added[(kind, base)]):.2f} ms",
                          flush=True)  # fmt: skip
    finally:
        query_cache.text_vector = real_text_vector
    reloads = reload_cost(20)

    heading = HEADING.replace("100k", f"{loaded['products'] // 1000}k")
    runs = (
        f"{len(texts)} shopper queries x {args.rounds} rounds per kind of query vector and comparison, the two "
        "sides alternating per query"
    )
    lines = section_header(heading, command, facts, versions(), runs)
    counts = {
        "values": sum(bool(u.values) for u in understood.values()),
        "bounds": sum(bool(u.bounds) for u in understood.values()),
        "corrected": sum(bool(u.corrections) for u in understood.values()),
    }
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`); FieldValue / "
        f"Spelling tables {tables}.",
        '- **Off**: `{"QUERY_UNDERSTANDING": false}`; **on**: the library defaults (understanding on, '
        '`TYPO_CORRECTION` on, `EXPANSION_THESAURUS` "wordnet"); **by hand**: off, asked with what `parse` '
        "understands given explicitly (the text without its price phrase and with its correction, the price "
        "bounds as `price__gte` / `price__lte` filters): the same search minus the understanding steps. Every "
        "other setting as in bench.settings.",
        "- **Searches**: `catalog_search.search(q, k=20)` in process (no HTTP), hybrid, facets on, no filters "
        "but the understood ones; the query vector injected, the same for every side.",
        f"- **Queries**: {len(texts)}, the shapes in turn ({', '.join(SHAPES)}; {len(texts) // len(SHAPES)} each), "
        f"from the catalog's FieldValue rows and the index's synonyms. `parse` found values in "
        f"{counts['values']}, a price in {counts['bounds']} and corrected a word in {counts['corrected']} of them. "
        "Examples: " + "; ".join(f"`{s.q}` ({s.shape})" for s in queries[: len(SHAPES)]) + ".",
    ]
    for base, title in comparisons.items():
        a = "by hand" if base == "hand" else "off"
        lines += [
            "",
            f"**{title[0].upper() + title[1:]}** (A = {a}, B = on):",
            "",
            *ab_table(rows[base], extra="answered differently", first="query vectors", digits=1),
        ]
    lines += [
        "",
        "Milliseconds understanding adds to a search: B - A of each pair (the same query, one right after the "
        "other), over every pair and by query shape.",
        "",
        "| query vectors | A | all: median | all: p95 | " + " | ".join(f"{s}: median" for s in SHAPES) + " |",
        "|---|---|---:|---:|" + "---:|" * len(SHAPES),
    ]
    for (kind, base), diffs in added.items():
        by_shape = {shape: [d for d, s in zip(diffs, shapes, strict=True) if s == shape] for shape in SHAPES}
        cells = " | ".join(fmt(median(by_shape[s]), 2) for s in SHAPES)
        a = "by hand" if base == "hand" else "off"
        lines.append(f"| {kind} | {a} | {fmt(median(diffs), 2)} | {fmt(percentile(diffs, 95), 2)} | {cells} |")
    total = len(timer.searches)
    lines += [
        "",
        f"The understanding steps alone, timed inside the {total} searches with understanding on: ms per search "
        "that ran the step (indented: a part of the step above it).",
        "",
        "| step | searches that ran it | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in _targets():
        got = [s[name] for s in timer.searches if name in s]
        label = name.replace("  ", "&nbsp;&nbsp;")
        lines.append(
            f"| {label} | {len(got)} of {total} | {fmt(percentile(got, 50), 2)} | {fmt(percentile(got, 95), 2)} "
            f"| {fmt(max(got) if got else None, 2)} |"
        )
    direct = [s.get("parse", 0) + s.get("_apply (hard filters)", 0) + s.get("rerank", 0) for s in timer.searches]
    lines += [
        f"| parse + _apply + rerank | {total} of {total} | {fmt(percentile(direct, 50), 2)} "
        f"| {fmt(percentile(direct, 95), 2)} | {fmt(max(direct), 2)} |",
        "",
        "The first search after a reload of the values (`values.matcher`, forced 20 times each): every "
        f"`VALUES_REFRESH_SECONDS` the FieldValue read, p50 {fmt(percentile(reloads['stale'], 50), 1)} ms "
        f"(max {fmt(max(reloads['stale']), 1)}); when the set of values changed (or a writer in the process "
        f"forgot its copy) the matcher's rebuild too, p50 {fmt(percentile(reloads['forgotten'], 50), 1)} ms "
        f"(max {fmt(max(reloads['forgotten']), 1)}).",
    ]
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
