"""Two layouts of one benchmark database side by side, through HTTP: the latency benchmark's searches, each
asked of server A and of server B one right after the other.

    python bench/layout_ab.py --products 100000 \\
        --b-sql "ALTER TABLE catalog_search_embedding ALTER COLUMN image SET STORAGE MAIN, ALTER COLUMN text SET STORAGE MAIN" \\
        --b-sql "VACUUM FULL catalog_search_embedding"

A side without statements is the database of ``bench/scale_data.py`` as loaded; a side with statements
(``--a-sql`` / ``--b-sql``, run in order outside a transaction) is a copy of it, made once and kept in
``var/bench/layout-<hash of the statements>`` for the next run. Each side gets its own embedded
PostgreSQL and gunicorn (the latency benchmark's server, its own Redis key prefix for the query cache);
both are up at once. The query vectors are in both caches beforehand (no encoding), once as the
random-weight model embeds the text and once catalog-like (bench/search_latency.py). Which side is asked
first alternates per query and round, so both see the same machine load; unless ``--different``, both
must answer the same (ids, scores rounded to 6 digits, facet counts). Reported per kind of query vector:
client p50 / p95 of each side and the median per-query A / B ratio, and each side's embedding table size.

``--a-tree`` / ``--b-tree`` serve a side from another checkout of the project, so that a change of code
and layout together is measured against the code before it (``git worktree add /tmp/before <commit>``).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    Server,
    ServerConfig,
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
from bench.scale_data import BENCH_DIR, MODEL_DIR, PG_SETTINGS, ScaleSpec, ensure_loaded, start
from bench.search_latency import CACHE_URL, catalog_vectors, get_json, make_queries, model_vectors, seed_cache


def layout_env(spec: ScaleSpec, statements: list[str]) -> tuple[dict[str, str], Path]:
    """The ``bench.settings`` environment of ``spec``'s database changed by ``statements`` (a kept copy;
    the loaded database itself when there are none), and its folder."""
    if not statements:
        return start(spec), spec.data_dir
    digest = hashlib.sha1(json.dumps([spec.data_dir.name, *statements]).encode()).hexdigest()[:12]
    folder = BENCH_DIR / f"layout-{digest}"
    if not (folder / "layout.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        print(
            f"==> Copying {spec.data_dir.name} to {folder.name} and applying {len(statements)} statement(s)",
            file=sys.stderr,
        )
        # The loaded database's server is not running here: each benchmark process stops it on exit.
        # cp -a: PostgreSQL's files keep their owner (the embedded server's user) and modes.
        subprocess.run(["cp", "-a", str(spec.data_dir), str(folder)], check=True)
        (folder / "pgdata" / "postmaster.pid").unlink(missing_ok=True)
        import psycopg

        with psycopg.connect(start_postgres(folder / "pgdata", settings=PG_SETTINGS), autocommit=True) as conn:
            for statement in statements:
                started = time.perf_counter()
                conn.execute(statement)
                print(f"    {time.perf_counter() - started:.1f} s: {statement}", file=sys.stderr)
        (folder / "layout.json").write_text(json.dumps({"from": spec.data_dir.name, "statements": statements}))
    url = start_postgres(folder / "pgdata", settings=PG_SETTINGS)
    return bench_env(url, folder / "var", MODEL_DIR), folder


def table_size(url: str) -> tuple[int, int]:
    """(total bytes, TOAST bytes) of ``catalog_search_embedding`` with its indexes."""
    import psycopg

    with psycopg.connect(url) as conn:
        total, toast = conn.execute(
            "SELECT pg_total_relation_size(c.oid), coalesce(pg_relation_size(c.reltoastrelid), 0) "
            "FROM pg_class c WHERE c.relname = 'catalog_search_embedding'"
        ).fetchone()
    return int(total), int(toast)


def get(conn: http.client.HTTPConnection, path: str) -> tuple[float, tuple]:
    """(client ms, answer: the hits and facet counts) of one search; raises on a non-200."""
    ms, data = get_json(conn, path)
    hits = [(r["id"], round(r["score"], 6)) for r in data["results"]]
    return ms, (hits, json.dumps(data["facets"], sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--a-sql", action="append", default=[], help="a statement that makes layout A")
    parser.add_argument("--b-sql", action="append", default=[], help="a statement that makes layout B")
    parser.add_argument("--a-label", default="", help="names layout A in the doc (default: its statements)")
    parser.add_argument("--b-label", default="", help="names layout B in the doc")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="times each query is asked of A and of B")
    parser.add_argument("--config", default="2x4:t1", help="gunicorn WORKERSxTHREADS[:tTORCH_THREADS]")
    parser.add_argument("--different", action="store_true", help="A and B may answer differently")
    for side in "ab":
        parser.add_argument(
            f"--{side}-tree",
            type=Path,
            help=f"serve {side.upper()} from another checkout of the project (e.g. a git worktree of an earlier "
            "commit): code and layout measured together",
        )
    add_doc_arguments(parser)
    args = parser.parse_args(argv)
    if args.a_sql == args.b_sql and args.a_tree == args.b_tree:
        raise SystemExit("A and B are the same: give --a-sql / --b-sql statements or --a-tree / --b-tree")
    trees = {side: (getattr(args, f"{side}_tree") or ROOT).resolve() for side in "ab"}
    for side, tree in trees.items():
        if not (tree / "catalog_search" / "__init__.py").is_file():
            raise SystemExit(f"--{side}-tree {tree}: not a checkout of this project")
    command = shown_command("layout_ab.py", argv)
    note = note_text(args.note, args.note_file)
    facts = machine_facts()
    spec = ScaleSpec(args.products, args.seed)
    loaded = ensure_loaded(spec)
    # The copies first: the loaded database must not be running while it is copied.
    envs = {
        side: layout_env(spec, getattr(args, f"{side}_sql"))[0]
        for side in sorted("ab", key=lambda s: not getattr(args, f"{s}_sql"))
    }
    setup_django(envs["a"])
    software = versions(["gunicorn"])
    sizes = {side: table_size(env["DATABASE_URL"]) for side, env in envs.items()}
    config = ServerConfig.parse(args.config)
    tmp = Path(tempfile.mkdtemp(prefix="catalog-search-layout-"))
    servers = {}
    for side, env in envs.items():
        server_env = dict(env, BENCH_CACHE_URL=CACHE_URL, BENCH_CACHE_PREFIX=f"layout-{side}")
        server_env["BENCH_CATALOG_SEARCH"] = json.dumps({"QUERY_CACHE": "default"})
        print(f"==> gunicorn {config} on layout {side.upper()}", file=sys.stderr)
        servers[side] = Server(config, server_env, tmp / f"gunicorn-{side}.log", root=trees[side])
        servers[side].start()
    rows = []
    try:
        conns = {side: http.client.HTTPConnection("127.0.0.1", s.port, timeout=120) for side, s in servers.items()}
        rng, seen = random.Random(args.seed + 3), set()
        for side in "ab":  # warm-up: database caches and code paths, with queries never measured
            for path in make_queries(10, rng, seen):
                get(conns[side], path)
        for kind in ("random-model", "catalog-like"):
            paths = make_queries(args.queries, rng, seen)
            vectors = model_vectors(paths) if kind == "random-model" else catalog_vectors(paths, seed=0)
            for side in "ab":
                seed_cache(spec.products, paths, vectors, prefix=f"layout-{side}")
            measured = side_by_side(paths, args.rounds, lambda side, path: get(conns[side], path))
            if measured.different and not args.different:
                raise SystemExit(f"A and B answer {paths[min(measured.different)]} differently")
            rows.append((kind, *measured.row()))
            print(
                f"{kind}: A p50 {rows[-1][1]:.1f} p95 {rows[-1][2]:.1f} | B p50 {rows[-1][3]:.1f} "
                f"p95 {rows[-1][4]:.1f} | A/B {rows[-1][5]:.2f}x"
            )
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def label(side: str) -> str:
        given = getattr(args, f"{side}_label")
        statements = getattr(args, f"{side}_sql")
        return given or ("; ".join(statements) if statements else "as loaded") + code(side)

    def code(side: str) -> str:
        """`` (code of <commit>)`` for a side served from another checkout."""
        if trees[side] == ROOT.resolve():
            return ""
        commit = subprocess.run(
            ["git", "-C", str(trees[side]), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        return f" (code of {commit or trees[side]})"

    heading = f"## Side by side: database layouts, {label('a')} vs {label('b')} (bench/layout_ab.py)"
    lines = section_header(
        heading,
        command,
        facts,
        software,
        f"{args.queries} queries x {args.rounds} rounds per kind of query vector, A and B alternating per query",
    )
    mib = 1024 * 1024
    lines += [
        f"- **Catalog**: {loaded['products']:,} demo-shop products (`bench/scale_data.py`), one copy per layout.",
        *(
            f"- **{side.upper()}**: {'; '.join(f'`{s}`' for s in getattr(args, f'{side}_sql')) or 'the database as loaded'}"
            f"{code(side) or ' (code of this checkout)'} (embedding table with its indexes {sizes[side][0] / mib:,.0f} MiB, of which TOAST "
            f"{sizes[side][1] / mib:,.0f} MiB)."
            for side in "ab"
        ),
        f"- **Servers**: `gunicorn demo_project.wsgi`, {config}, one per layout, both up at once, library "
        "defaults (bench settings), query embeddings in each server's Redis cache beforehand.",
        "- **Requests**: `/api/search/`, hybrid, `k` 20, facets on, half `category` + `price__lte`, half "
        "`in_stock=true` + `price__gte`; client ms (request sent to last byte read). "
        + ("A and B may answer differently." if args.different else "A and B returned the same answers."),
        "",
        *ab_table(rows),
    ]
    publish(lines, note, args.doc, heading, write=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
