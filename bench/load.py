"""Bounded load benchmark of the HTTP API: gunicorn + the demo shop on a throwaway database.

    python bench/load.py --products 2000 --clients 32 --seconds 30

Steps: start a private embedded PostgreSQL and a temp var folder; save a random-weight CLIP ViT-B/32
(real architecture, so encoding costs what a deployment pays; relevance is meaningless); seed products
of the demo catalog (``demo_project/shop/catalog.py``, rendered photos) and index them synchronously;
serve ``demo_project.wsgi`` with gunicorn on a free loopback port; drive it with keep-alive clients (~80% text GETs, ~20% photo POSTs) for a fixed
time; print the numbers and write them into the "API load" section of docs/benchmarks.md.
Everything it starts is stopped at exit; the database and the temp folder are deleted.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import io
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlencode

if __package__ in (None, ""):  # run as ``python bench/load.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DOC,
    SPEED_NOTE,
    Server,
    ServerConfig,
    bench_env,
    build_model,
    fmt,
    machine_facts,
    percentile,
    start_postgres,
    versions,
    write_section,
)
from demo_project.shop.artwork import TYPES
from demo_project.shop.catalog import BRANDS, MATERIALS, USES, ProductSpec, generate, photo_jpeg
from demo_project.shop.photos import COLORS, customer_photo

SECTION = "## API load (bench/load.py)"


# Catalog: the demo shop's generator ------------------------------------------------------------------

CATEGORIES = sorted({t.category for t in TYPES})
BRAND_NAMES = [b.name for b in BRANDS]
COLOR_NAMES = list(COLORS)
ADJECTIVES = ["classic", "lightweight", "premium", "everyday", "vintage", "waterproof", "cozy"]


def catalog_specs(n: int, seed: int) -> list[ProductSpec]:
    """``n`` products of the demo catalog (``demo_project/shop/catalog.py``); photos render on seeding."""
    return generate(n, seed)


# Environment: database, model, seeding ------------------------------------------------------------


def seed_products(specs: list[ProductSpec]) -> None:
    """Insert the products with their rendered photos (bulk insert: no save signals, the trigger still fires)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from demo_project.shop.models import Product

    rows = []
    for spec in specs:
        name = default_storage.save(f"products/{spec.image_name}", ContentFile(photo_jpeg(spec)))
        rows.append(Product(**spec.model_fields(), image=name))
    Product.objects.bulk_create(rows, batch_size=500)


def component_costs(photo: bytes, repeat: int = 15) -> dict[str, float]:
    """Median in-process cost (ms) of the parts of a query, one torch thread, no HTTP and no concurrency."""
    import torch
    from PIL import Image

    from catalog_search import search
    from catalog_search.encoding.encoders import get_encoder

    encoder = get_encoder()
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    probes = {
        "encode_text": lambda: encoder.encode_texts(["slim red leather tote"]),
        "encode_image": lambda: encoder.encode_images([image]),
        "search_bm25": lambda: search(q="red leather tote", mode="bm25"),
        "search_bm25_filtered": lambda: search(q="red tote", mode="bm25", filters={"category": ["bags"]}),
        "search_text": lambda: search(q="red leather tote"),
        "search_photo": lambda: search(image=photo),
    }
    costs = {}
    try:
        for name, probe in probes.items():
            probe()
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                probe()
                times.append((time.perf_counter() - start) * 1000)
            costs[name] = median(times)
    finally:
        torch.set_num_threads(threads)
    return costs


def index_products() -> tuple[float, int, int]:
    """Synchronous reindex with progress; returns (seconds, indexed, failed)."""
    from catalog_search.encoding.encoders import get_encoder
    from catalog_search.indexing.sync import reindex
    from catalog_search.models import OutboxEntry
    from catalog_search.registry import get_index
    from demo_project.shop.models import Product

    start = time.perf_counter()
    encoder = get_encoder()
    loaded = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - loaded, 1e-9)
        print(f"\r  indexed {done}/{total} ({rate:.1f} products/s)", end="", file=sys.stderr, flush=True)

    report = reindex(get_index(Product), encoder, batch_size=64, progress=progress)
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    OutboxEntry.objects.all().delete()  # the trigger recorded every insert; no worker runs here
    return seconds, report.indexed, len(report.failed)


# Requests -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    kind: str  # "text" or "photo"
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def text_requests(n: int, rng: random.Random) -> list[Request]:
    """``n`` text searches from the demo catalog's vocabulary; about half carry two filters."""
    out = []
    for _ in range(n):
        art = rng.choice(TYPES)
        noun, color = rng.choice(art.terms), rng.choice(COLORS[rng.choice(COLOR_NAMES)].terms)
        material = rng.choice(MATERIALS[art.materials])
        q = rng.choice(
            [
                noun,
                f"{color} {noun}",
                f"{material} {noun}",
                f"{rng.choice(ADJECTIVES)} {color} {noun}",
                f"{rng.choice(BRAND_NAMES)} {noun}",
                f"{rng.choice(['striped', 'dotted', 'checked'])} {material} {noun} for {rng.choice(USES[art.category])}",
            ]
        )
        params: dict[str, str] = {"q": q}
        if rng.random() < 0.5:
            choice = rng.randrange(3)
            if choice == 0:
                params |= {"category": art.category, "price__lte": str(rng.choice([25, 50, 100, 150, 250]))}
            elif choice == 1:
                params |= {"brand": rng.choice(BRAND_NAMES), "in_stock": "true"}
            else:
                params |= {"color": rng.choice(COLOR_NAMES), "price__gte": str(rng.choice([20, 50, 80]))}
        out.append(Request("text", "GET", "/api/search/?" + urlencode(params)))
    return out


def photo_requests(n: int, rng: random.Random, photos: int = 48) -> list[Request]:
    """``n`` multipart photo searches over ``photos`` distinct customer photos (the held-out art set,
    recolored); some refined by ``q`` or a category filter."""
    pool = []
    for i in range(photos):
        art = rng.choice(TYPES)
        pattern = rng.choice(["solid", "solid", "striped", "dotted"])
        pool.append((art.category, customer_photo(art.slug, i, rng.choice(COLOR_NAMES), pattern)))
    out = []
    for i in range(n):
        category, data = rng.choice(pool)
        fields: dict[str, str] = {}
        if rng.random() < 0.35:
            fields["q"] = rng.choice([f"in {rng.choice(COLOR_NAMES)}", "leather", "cheaper", "striped"])
        if rng.random() < 0.25:
            fields["category"] = category
        boundary = f"bench{i:06d}{rng.getrandbits(32):08x}"
        body = multipart(fields, data, boundary)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        out.append(Request("photo", "POST", "/api/search/image/", body, headers))
    return out


def multipart(fields: dict[str, str], image: bytes, boundary: str) -> bytes:
    """A ``multipart/form-data`` body with text ``fields`` and the JPEG file field ``image``."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
    parts.append(f"{head}Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


# Load generation ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    kind: str
    seconds: float
    status: int  # 0 = exception
    took_ms: float | None = None  # the server's own search time, from the response
    error: str = ""


def send(conn: http.client.HTTPConnection, req: Request) -> tuple[int, bytes, bool]:
    """One request on a keep-alive connection; returns (status, body, whether the server closes it)."""
    headers = dict(req.headers)
    if req.body is not None:
        headers["Content-Length"] = str(len(req.body))
    conn.request(req.method, req.path, body=req.body, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, body, response.will_close


def client(
    port: int, requests: dict[str, list[Request]], text_share: float, deadline: float, seed: int, timeout: float
) -> list[Sample]:
    """One closed-loop client: send, wait for the answer, repeat until ``deadline``."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    while time.perf_counter() < deadline:
        req = rng.choice(requests["text" if rng.random() < text_share else "photo"])
        start = time.perf_counter()
        try:
            status, body, closing = send(conn, req)
        except (OSError, http.client.HTTPException) as exc:
            samples.append(Sample(req.kind, time.perf_counter() - start, 0, error=type(exc).__name__))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            continue
        elapsed = time.perf_counter() - start
        took = None
        if 200 <= status < 300:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                took = float(json.loads(body)["took_ms"])
        error = "" if 200 <= status < 300 else body[:200].decode(errors="replace")
        samples.append(Sample(req.kind, elapsed, status, took, error))
        if closing:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.close()
    return samples


def run_load(
    port: int,
    requests: dict[str, list[Request]],
    clients: int,
    seconds: float,
    text_share: float,
    seed: int,
    timeout: float,
) -> tuple[list[Sample], float]:
    """``clients`` threads for ``seconds``; returns the samples and the wall time until the last answer."""
    results: list[list[Sample]] = [[] for _ in range(clients)]
    start = time.perf_counter()
    deadline = start + seconds

    def work(i: int) -> None:
        results[i] = client(port, requests, text_share, deadline, seed * 1000 + i, timeout)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [s for r in results for s in r], time.perf_counter() - start


def summarize(samples: list[Sample], wall: float) -> dict[str, dict[str, float | int | None]]:
    """Per kind and overall: requests, req/s, errors, latency percentiles (ms), median server time."""
    out: dict[str, dict[str, float | int | None]] = {}
    for kind in ("text", "photo", "all"):
        chosen = [s for s in samples if kind in ("all", s.kind)]
        ms = [s.seconds * 1000 for s in chosen]
        took = [s.took_ms for s in chosen if s.took_ms is not None]
        out[kind] = {
            "requests": len(chosen),
            "rps": len(chosen) / wall if wall else 0.0,
            "errors": sum(1 for s in chosen if not 200 <= s.status < 300),
            "p50": percentile(ms, 50),
            "p95": percentile(ms, 95),
            "p99": percentile(ms, 99),
            "max": max(ms) if ms else None,
            "server_p50": percentile(took, 50),
        }
    return out


# CPU accounting (Linux /proc) ---------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user+system clock ticks) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def _tree_ticks(table: dict[int, tuple[int, int]], root: int) -> dict[int, int]:
    """Ticks of ``root`` and all its descendants."""
    pids, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent and pid not in pids]
        pids.update(children)
        frontier.extend(children)
    return {pid: table[pid][1] for pid in pids if pid in table}


def _machine_ticks() -> tuple[int, int, int]:
    """(total, idle + iowait, steal) ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values[:8]), values[3] + values[4], values[7]


class CpuMeter:
    """CPU used by process trees (server, database) and by this process (the client) between ``start()``
    and ``stop()``, in cores; plus the whole machine's busy and steal time."""

    def __init__(self, roots: dict[str, int]):
        self.roots = roots
        self.hz = os.sysconf("SC_CLK_TCK")

    def _snapshot(self) -> tuple[dict[str, dict[int, int]], float, tuple[int, int, int], float]:
        table = _proc_table()
        trees = {name: _tree_ticks(table, pid) for name, pid in self.roots.items()}
        own = os.times()
        return trees, own.user + own.system, _machine_ticks(), time.perf_counter()

    def start(self) -> None:
        self.before = self._snapshot()

    def stop(self) -> dict[str, float]:
        trees, own, machine, now = self._snapshot()
        old_trees, old_own, old_machine, then = self.before
        wall = now - then
        used = {
            name: sum(t - old_trees[name].get(pid, 0) for pid, t in ticks.items()) / self.hz / wall
            for name, ticks in trees.items()
        }
        used["client"] = (own - old_own) / wall
        total, idle, steal = (a - b for a, b in zip(machine, old_machine, strict=True))
        cores = len(os.sched_getaffinity(0))
        used["machine_busy"] = (total - idle) / total * cores if total else 0.0
        used["steal"] = steal / total * cores if total else 0.0
        used["other"] = max(0.0, used["machine_busy"] - sum(used[n] for n in (*self.roots, "client")))
        return used


# Server ------------------------------------------------------------------------------------------------


# Report ------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    config: ServerConfig
    run: int
    wall: float
    stats: dict[str, dict[str, float | int | None]]
    cpu: dict[str, float]
    idle: dict[str, float | None]  # unloaded (one client) median latency per kind, ms
    errors: Counter[str]
    log_problems: list[str]


def result_rows(result: RunResult) -> list[str]:
    rows = []
    for kind in ("text", "photo", "all"):
        s = result.stats[kind]
        rows.append(
            f"| {result.config.label} | {result.run} | {kind} | {s['requests']} | {fmt(s['rps'], 1)} | {s['errors']} "
            f"| {fmt(s['p50'])} | {fmt(s['p95'])} | {fmt(s['p99'])} | {fmt(s['server_p50'])} |"
        )
    return rows


def median_table(results: list[RunResult]) -> list[str]:
    """Per kind, the median over ``results`` of every number."""
    keys = ("requests", "rps", "errors", "p50", "p95", "p99", "server_p50")
    lines = [
        "| | requests | req/s | errors | p50 ms | p95 ms | p99 ms | server p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("text", "photo", "all"):
        cells = []
        for key in keys:
            values = [float(r.stats[kind][key]) for r in results if r.stats[kind][key] is not None]
            cells.append(fmt(median(values) if values else None, 1 if key == "rps" else 0))
        lines.append(f"| **{kind}** | " + " | ".join(cells) + " |")
    return lines


def render(
    args: argparse.Namespace,
    command: str,
    facts: dict[str, str],
    setup: dict[str, Any],
    results: list[RunResult],
    best: ServerConfig,
) -> str:
    """The markdown section."""
    chosen = [r for r in results if r.config == best]
    runs = len(chosen)
    lines = [
        SECTION,
        "",
        f"Command (from the project root, `.venv` active): `{command}`",
        "",
        f"- **Date**: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        + ("one run per configuration." if args.runs == 1 else f"{args.runs} runs per configuration, interleaved."),
        f"- **Machine**: `nproc` = {facts['nproc']}, {facts['cpu']}, {facts['memory']} RAM, shared, CPU only; "
        f"load average before the run {facts['load']}; {SPEED_NOTE.format(**facts)}",
        f"- **Software**: {setup['versions']}.",
        f"- **Catalog**: {args.products} products of the demo catalog (`demo_project/shop/catalog.py` "
        f"`generate(count, seed)`: {len(CATEGORIES)} categories, {len(TYPES)} product types, {len(BRANDS)} brands, "
        f"{len(COLORS)} colors, rendered JPEG product photos), indexed synchronously with `reindex(batch_size=64)` in "
        f"{setup['index_seconds']} s ({setup['index_rate']} products/s, text + image vectors, including model load).",
        f"- **Model**: CLIP ViT-B/32 architecture with random weights ({setup['parameters']} parameters, 224 px input, "
        "512-d vectors), BERT WordPiece tokenizer; relevance is meaningless, the cost per query is real.",
        f"- **Server**: `gunicorn demo_project.wsgi` (gthread), bench settings: DEBUG off, throttling off, "
        f"embedded PostgreSQL on a Unix socket; each worker warmed up (model loaded, one text and one photo search) "
        f"and then {args.warmup:g} s of unmeasured load before every measurement.",
        f"- **Load**: {args.clients} closed-loop keep-alive clients (threads, `http.client`) for {args.seconds:g} s: "
        f"{args.text_share:.0%} text GETs `/api/search/` (catalog vocabulary, half with two filters, facets always "
        f"computed), {1 - args.text_share:.0%} photo POSTs `/api/search/image/` (customer photos: the held-out "
        "OpenMoji art set, recolored JPEGs; 35% with a `q` refinement, 25% with a category filter). Every non-2xx or exception counts as an error.",
        "",
        f"### Result: {best} ({'median of ' + str(runs) + ' runs' if runs > 1 else 'one run'})",
        "",
        *median_table(chosen),
        "",
        "Latencies are client-side (request sent to last byte read), in ms; *server p50* is the median `took_ms` "
        "the API reports (the search itself, without HTTP, parsing and queueing).",
        "",
        "### Every run",
        "",
        "| config | run | kind | requests | req/s | errors | p50 ms | p95 ms | p99 ms | server p50 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines += result_rows(result)
    lines += [
        "",
        "Configurations: `WxT` = gunicorn workers x threads per worker; `:tN` = `OMP_NUM_THREADS=N` (torch intra-op "
        "threads per worker process; default is one per core). The best configuration is the one with the highest "
        "median throughput.",
        "",
        "### Where the time goes",
        "",
        "| config | run | unloaded p50 text / photo ms | CPU cores used: gunicorn / postgres / client / other / steal |",
        "|---|---:|---|---|",
    ]
    for r in results:
        cpu = r.cpu
        lines.append(
            f"| {r.config.label} | {r.run} | {fmt(r.idle['text'])} / {fmt(r.idle['photo'])} | "
            f"{cpu['server']:.2f} / {cpu['postgres']:.2f} / {cpu['client']:.2f} / {cpu['other']:.2f} / {cpu['steal']:.2f} |"
        )
    costs = setup["costs"]
    lines += [
        "",
        "*Unloaded* is one client sending requests one after the other (before the load). CPU is measured from "
        "/proc over the measured window; `other` is everything else on the machine.",
        "",
        "Parts of one query, in process (no HTTP, no concurrency, one torch thread; median ms): "
        + ", ".join(f"{name.replace('_', ' ')} {value:.0f}" for name, value in costs.items())
        + ". *search text* = encode text + BM25 + vector search + fusion + facets; *search photo* = decode + "
        "encode image + vector search + facets.",
    ]
    problems = sorted({p for r in results for p in r.log_problems})
    errors = sum((r.errors for r in results), Counter())
    if errors:
        lines += ["", "Errors: " + ", ".join(f"{k}: {v}" for k, v in errors.most_common()) + "."]
    if problems:
        lines += ["", "gunicorn log problems:", "", *(f"    {p}" for p in problems[:10])]
    if args.note:
        lines += ["", f"Note: {args.note}"]
    return "\n".join(lines) + "\n"


def print_table(results: list[RunResult]) -> None:
    print(
        f"\n{'config':<9} {'run':>3} {'kind':<6} {'requests':>8} {'req/s':>7} {'errors':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'srv p50':>7}"
    )
    for r in results:
        for kind in ("text", "photo", "all"):
            s = r.stats[kind]
            print(
                f"{r.config.label:<9} {r.run:>3} {kind:<6} {s['requests']:>8} {fmt(s['rps'], 1):>7} {s['errors']:>6} "
                f"{fmt(s['p50']):>7} {fmt(s['p95']):>7} {fmt(s['p99']):>7} {fmt(s['server_p50']):>7}"
            )
        cpu = r.cpu
        print(
            f"{'':<9} {'':>3} cpu    server {cpu['server']:.2f}  postgres {cpu['postgres']:.2f}  client {cpu['client']:.2f}  "
            f"other {cpu['other']:.2f}  steal {cpu['steal']:.2f} cores; unloaded p50 text {fmt(r.idle['text'])} ms, "
            f"photo {fmt(r.idle['photo'])} ms"
        )


# Main -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per run")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured load before each run, seconds")
    parser.add_argument("--runs", type=int, default=1, help="measurements per configuration (a fresh server each)")
    parser.add_argument(
        "--config",
        type=ServerConfig.parse,
        action="append",
        help="gunicorn WORKERSxTHREADS[:tTORCH_THREADS]; repeat to compare (default 2x4:t1)",
    )
    parser.add_argument("--text-share", type=float, default=0.8)
    parser.add_argument("--timeout", type=float, default=60.0, help="client socket timeout, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--note", default="", help="a sentence added to the doc section (e.g. machine contention)")
    args = parser.parse_args(argv)
    args.config = args.config or [ServerConfig.parse("2x4:t1")]
    return args


def idle_latency(port: int, requests: dict[str, list[Request]], n: int = 10) -> dict[str, float | None]:
    """Median latency (ms) of ``n`` sequential requests per kind from one client: the service time."""
    out: dict[str, float | None] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for kind, pool in requests.items():
        times = []
        for req in pool[:n]:
            start = time.perf_counter()
            status, _, closing = send(conn, req)
            if 200 <= status < 300:
                times.append((time.perf_counter() - start) * 1000)
            if closing:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        out[kind] = percentile(times, 50)
    conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python bench/load.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    facts = machine_facts()
    tmp = Path(tempfile.mkdtemp(prefix="catalog-search-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # registered first, so it runs after the database is gone
    print(f"==> Throwaway database and var folder in {tmp}", file=sys.stderr)
    database_url = start_postgres(tmp / "pgdata", throwaway=True)
    env = bench_env(database_url, tmp / "var", tmp / "var" / "clip-vit-b32-random")
    os.environ.update(env)
    print("==> Random-weight CLIP ViT-B/32", file=sys.stderr)
    parameters = build_model(Path(env["CATALOG_SEARCH_MODEL"]), args.seed)

    import django
    from django.core.management import call_command
    from django.db import connections

    from catalog_search.encoding.encoders import clear_cache

    django.setup()
    call_command("migrate", verbosity=0)
    print(f"==> Seeding {args.products} products", file=sys.stderr)
    rng = random.Random(args.seed)
    seed_products(catalog_specs(args.products, args.seed))
    print("==> Indexing", file=sys.stderr)
    index_seconds, indexed, failed = index_products()
    if failed:
        print(f"  {failed} products failed to index", file=sys.stderr)
    requests = {"text": text_requests(2000, rng), "photo": photo_requests(400, rng)}
    print("==> Component costs (in process, one torch thread)", file=sys.stderr)
    costs = component_costs(customer_photo("handbag", 0, "red"))
    print("  " + ", ".join(f"{k} {v:.0f} ms" for k, v in costs.items()), file=sys.stderr)
    clear_cache()  # free this process's copy of the model before the servers load theirs
    setup = {
        "versions": versions(["torch", "transformers", "gunicorn"]),
        "index_seconds": f"{index_seconds:.0f}",
        "index_rate": f"{indexed / index_seconds:.1f}",
        "parameters": f"{parameters / 1e6:.0f} M",
        "costs": costs,
    }
    postmaster = int((tmp / "pgdata" / "postmaster.pid").read_text().split()[0])
    connections.close_all()

    results: list[RunResult] = []
    for run in range(1, args.runs + 1):
        for config in args.config:
            print(f"==> Run {run}: {config}", file=sys.stderr)
            server = Server(config, env, tmp / f"gunicorn-{config.label}-{run}.log", args.timeout)
            server.start()
            try:
                idle = idle_latency(server.port, requests)
                run_load(
                    server.port, requests, args.clients, args.warmup, args.text_share, args.seed + 99, args.timeout
                )
                meter = CpuMeter({"server": server.process.pid, "postgres": postmaster})
                meter.start()
                samples, wall = run_load(
                    server.port, requests, args.clients, args.seconds, args.text_share, args.seed + run, args.timeout
                )
                cpu = meter.stop()
            finally:
                server.stop()
            errors = Counter(f"{s.kind} {s.status or s.error}" for s in samples if not 200 <= s.status < 300)
            results.append(
                RunResult(config, run, wall, summarize(samples, wall), cpu, idle, errors, server.log_problems())
            )
            print_table(results[-1:])

    def throughput(config: ServerConfig) -> float:
        return median([float(r.stats["all"]["rps"] or 0) for r in results if r.config == config])

    best = max(args.config, key=throughput)
    print_table(results)
    print(f"\nBest: {best} ({throughput(best):.1f} req/s median)")
    if not args.no_doc:
        write_section(args.doc, render(args, command, facts, setup, results, best), SECTION)
        print(f"Wrote the section '{SECTION}' of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
