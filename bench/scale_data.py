"""Shared loader of the scale benchmarks: a reusable database with N products of the demo shop, fast.

    python bench/scale_data.py --products 100000 [--seed 1]
    python bench/scale_data.py --products 1000000 --real 100000 --no-vectors   # BM25 scale only
    python bench/scale_data.py --describe   # writes the "Scale data" section of docs/benchmarks.md

The database lives in ``var/bench/scale-<N>-s<seed>[-novec]/`` (an embedded PostgreSQL 18 + pgvector of its
own) and is loaded once: later runs and other benchmarks reuse it (``ensure_loaded`` + ``start``).

What is real and what is synthetic:

- **Products**: ``demo_project.shop.catalog.generate(count, seed)``, the demo shop's own text generator
  (titles, descriptions, brands, prices, stock; photos are never rendered), bulk-inserted as
  ``shop.Product`` rows. The image field names a file that does not exist (nothing reads it).
- **Documents, postings, BM25 statistics**: through catalog_search's own code, ``indexing.build_doc``
  (the analyzer) and ``indexing.documents.write_documents`` in batches, so every length, df and avgdl is what
  production would store.
- **Vectors**: synthetic, not from a network (encoding 100k photos takes hours on 2 cores). 512-d, unit
  length, built like real CLIP embeddings are shaped: a shared "cone" direction (CLIP vectors of any two
  images have cosine ~0.5, not 0), a per-modality offset (the image/text modality gap), centroids for
  category, product type (around its category), color, pattern, material and brand, a 48-d latent "style"
  subspace (pose, lighting, background: real embeddings have low intrinsic dimension) and a little
  isotropic noise. Uniform random 512-d vectors would be the wrong test: all pairwise distances are
  nearly equal, so HNSW graphs and filtered scans behave nothing like on real data. Text vectors use the
  same recipe with the text modality offset. They are written with ``indexing.write_vectors`` (inside
  ``write_documents``) under the Encoder row of the random-weight ViT-B/32 that ``bench/common.py``
  builds, so ``catalog_search.search`` and the API use them, with the query encoded by that model.
- **HNSW**: the Encoder row is created by ``indexing.ensure_encoder`` (which creates the per-encoder
  partial HNSW indexes); the loader drops them while it writes and recreates them afterwards with the
  same ``indexing.ensure_vector_indexes`` DDL (same m, ef_construction, expression and predicate), because
  a bulk build is far faster than 200k incremental inserts and gives an equivalent graph.
- ``--real R`` with ``--products N > R``: R products through the real path, then the rest by copying them
  in SQL (``INSERT ... SELECT`` per replica: products, documents, postings), with df, N and total length
  scaled to match, checked by a recount. For the 1M BM25 benchmark: no Python per document. With vectors,
  each copy gets vectors of its own from the same recipe (the copied product's attributes, fresh style and
  noise), written with a binary ``COPY``: copies of the same vectors would put ten identical points in the
  HNSW graph per product, which no real catalog has. The HNSW indexes are built after the copies.

PostgreSQL runs with ``shared_buffers = 1GB`` (a tuned server; the initdb default of 128 MB would be
smaller than the 100k vector index). The HNSW build gets ``maintenance_work_mem`` of ``HNSW_BUILD_MEMORY``
(enough for 1M 512-d graphs to be built in memory; pgvector's notice when one does not fit is recorded in
``loaded.json``, with the building backend's peak resident memory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as ``python bench/scale_data.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DOC,
    ROOT,
    SPEED_NOTE,
    bench_env,
    build_model,
    machine_facts,
    setup_django,
    start_postgres,
    write_section,
)

# BENCH_DIR: another folder for the databases (a checkout benchmarking a schema change keeps its own copy,
# and the one in var/ stays as the other checkout's code expects it; bench/search_ab.py).
BENCH_DIR = Path(os.environ.get("BENCH_DIR") or ROOT / "var" / "bench")
MODEL_DIR = BENCH_DIR / "clip-vit-b32-random"
PG_SETTINGS = {"shared_buffers": "1GB"}
HNSW_BUILD_MEMORY = "8GB"
DIM = 512
BATCH = 2000


@dataclass(frozen=True)
class ScaleSpec:
    """Which database: ``products`` in total, ``real`` of them through the real indexing path."""

    products: int
    seed: int = 1
    real: int | None = None  # None = all of them
    vectors: bool = True

    @property
    def real_count(self) -> int:
        return min(self.real or self.products, self.products)

    @property
    def data_dir(self) -> Path:
        real = f"-r{self.real_count}" if self.real_count < self.products else ""
        return BENCH_DIR / f"scale-{self.products}-s{self.seed}{real}{'' if self.vectors else '-novec'}"

    def args(self) -> list[str]:
        out = ["--products", str(self.products), "--seed", str(self.seed)]
        if self.real_count < self.products:
            out += ["--real", str(self.real_count)]
        return out + ([] if self.vectors else ["--no-vectors"])


def meta(spec: ScaleSpec) -> dict[str, Any] | None:
    """What the loader recorded (counts, timings), or None if the database is not loaded."""
    path = spec.data_dir / "loaded.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_loaded(spec: ScaleSpec) -> dict[str, Any]:
    """Load the database in a subprocess unless it already is; returns its metadata."""
    import subprocess

    if meta(spec) is None:
        print(f"==> Loading {spec.data_dir.name} (once; reused afterwards)", file=sys.stderr)
        subprocess.run([sys.executable, str(Path(__file__).resolve()), *spec.args()], check=True, cwd=ROOT)
    loaded = meta(spec)
    assert loaded is not None
    return loaded


def start(spec: ScaleSpec) -> dict[str, str]:
    """Start the (loaded) database server and return the ``bench.settings`` environment for it.
    The server stops when this process exits."""
    url = start_postgres(spec.data_dir / "pgdata", settings=PG_SETTINGS)
    build_model(MODEL_DIR)
    env = bench_env(url, spec.data_dir / "var", MODEL_DIR)
    bring_up_to_date(env)
    return env


MIGRATED_APPS = {
    "catalog_search": ROOT / "catalog_search" / "migrations",
    "shop": ROOT / "demo_project" / "shop" / "migrations",
}


def bring_up_to_date(env: dict[str, str]) -> None:
    """A database loaded by an earlier checkout gets this checkout's migrations, then a ``VACUUM FULL``
    that stores its rows as a fresh load would (e.g. migration 0004 keeps image vectors in the row only
    for rows written after it). Without this a benchmark would measure the old layout without saying so."""
    import subprocess

    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('django_migrations')").fetchone()[0] is None:
            return  # a new database: the loader migrates it
        applied = set(conn.execute("SELECT app, name FROM django_migrations").fetchall())
        missing = [
            (app, path.stem)
            for app, folder in MIGRATED_APPS.items()
            for path in sorted(folder.glob("[0-9]*.py"))
            if (app, path.stem) not in applied
        ]
        if not missing:
            return
        names = ", ".join(f"{app}.{name}" for app, name in missing)
        print(f"==> {names} not applied: migrating, then VACUUM FULL (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True)
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '2GB'")  # the HNSW rebuilds: many times slower in 64 MB
        conn.execute("VACUUM FULL ANALYZE")
        # VACUUM FULL leaves no page marked all-visible: index-only scans visit the table again and the
        # planner's estimates change (docs/configuration.md, migrate) until a plain VACUUM.
        conn.execute("VACUUM ANALYZE")
        print(
            f"    VACUUM FULL ANALYZE + VACUUM ANALYZE in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )


# Synthetic vectors --------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class VectorModel:
    """Deterministic CLIP-like vectors from product attributes (see the module docstring)."""

    WEIGHTS = {"cone": 0.7, "modality": 1.0, "category": 0.55, "type": 0.85, "color": 0.65}
    WEIGHTS |= {"pattern": 0.35, "material": 0.3, "brand": 0.2, "style": 0.55, "noise": 0.3}
    STYLE_DIM = 48

    def __init__(self, seed: int = 1, dim: int = DIM):
        from demo_project.shop.artwork import TYPES
        from demo_project.shop.catalog import BRANDS, MATERIALS
        from demo_project.shop.photos import COLORS

        rng = np.random.default_rng([seed, 512])
        self.dim = dim
        self.cone = _unit(rng.normal(size=dim))
        self.modality = {m: _unit(rng.normal(size=dim)) for m in ("image", "text")}
        categories = sorted({t.category for t in TYPES})
        self.category = {c: _unit(rng.normal(size=dim)) for c in categories}
        self.type = {t.slug: _unit(0.7 * self.category[t.category] + _unit(rng.normal(size=dim))) for t in TYPES}
        self.color = {c: _unit(rng.normal(size=dim)) for c in COLORS}
        self.pattern = {p: _unit(rng.normal(size=dim)) for p in ("solid", "striped", "dotted", "checked")}
        materials = sorted({m for group in MATERIALS.values() for m in group})
        self.material = {m: _unit(rng.normal(size=dim)) for m in materials}
        self.brand = {b.name: _unit(rng.normal(size=dim)) for b in BRANDS}
        self.style = rng.normal(size=(self.STYLE_DIM, dim)) / np.sqrt(dim)

    def vectors(self, rows: list[dict[str, str]], modality: str, rng: np.random.Generator) -> np.ndarray:
        """float32 unit vectors, one per row of attributes (category, type, color, pattern, material, brand)."""
        w = self.WEIGHTS
        n = len(rows)
        x = np.tile(w["cone"] * self.cone + w["modality"] * self.modality[modality], (n, 1))
        for name in ("category", "type", "color", "pattern", "material", "brand"):
            table = getattr(self, name)
            zero = np.zeros(self.dim)
            x += w[name] * np.stack([table.get(r.get(name, ""), zero) for r in rows])
        style = rng.normal(size=(n, self.STYLE_DIM)) @ self.style  # norm ~ sqrt(48/512) * ... then scaled
        x += w["style"] * _unit(style)
        x += w["noise"] * _unit(rng.normal(size=(n, self.dim)))
        return _unit(x).astype(np.float32)


def product_attributes(products) -> list[dict[str, str]]:
    return [
        {
            "category": p.category,
            "type": p.attributes.get("type", ""),
            "color": p.color,
            "pattern": p.pattern,
            "material": p.attributes.get("material", ""),
            "brand": p.brand,
        }
        for p in products
    ]


def query_vectors(n: int, seed: int = 7, model_seed: int = 1) -> tuple[np.ndarray, list[dict[str, str]]]:
    """``n`` text-side query vectors ("red sneakers", "leather tote", ...) from the same recipe as the
    stored vectors but never stored: what a text query's embedding looks like to the index."""
    from demo_project.shop.artwork import TYPES
    from demo_project.shop.photos import COLORS

    model = VectorModel(model_seed)
    rng = np.random.default_rng([seed, 99])
    rows = []
    for _ in range(n):
        art = TYPES[rng.integers(len(TYPES))]
        row = {"category": art.category, "type": art.slug}
        if rng.random() < 0.7:
            row["color"] = list(COLORS)[rng.integers(len(COLORS))]
        rows.append(row)
    return model.vectors(rows, "text", rng), rows


# Loading --------------------------------------------------------------------------------------------


def _insert_products(specs) -> None:
    from demo_project.shop.models import Product

    rows = [Product(**s.model_fields(), image=f"products/{s.image_name}") for s in specs]
    Product.objects.bulk_create(rows, batch_size=5000)


def _index_real(spec: ScaleSpec, encoder_row, log) -> None:
    """Documents, postings and statistics through build_doc + write_documents; vectors synthetic."""
    from django.db import connection, transaction

    from catalog_search.indexing.documents import build_doc, write_documents
    from catalog_search.indexing.vectors import Vectors, write_vectors
    from catalog_search.registry import get_index
    from demo_project.shop.models import Product

    index = get_index(Product)
    model = VectorModel(spec.seed)
    done, started = 0, time.perf_counter()
    queryset = Product.objects.order_by("pk")
    last = 0
    while True:
        batch = list(queryset.filter(pk__gt=last)[:BATCH])
        if not batch:
            break
        last = batch[-1].pk
        docs = [build_doc(index, p, with_image=False) for p in batch]
        vectors = []
        if encoder_row is not None:
            attrs = product_attributes(batch)
            rng = np.random.default_rng([spec.seed, last])
            image, text = model.vectors(attrs, "image", rng), model.vectors(attrs, "text", rng)
            vectors = [Vectors(encoder_row, [d.object_id for d in docs], list(image), list(text))]
        with transaction.atomic(), connection.cursor() as cursor:
            ids = write_documents(index, docs)
            for entry in vectors:
                write_vectors(cursor, index.content_type.pk, entry, ids)
        done += len(batch)
        log(f"\r  indexed {done}/{spec.real_count} ({done / (time.perf_counter() - started):.0f}/s)", end="")
    log()


def _base_attributes(base: int) -> list[dict[str, str]]:
    """The vector recipe's attributes of products 1..``base``, in id order."""
    from demo_project.shop.models import Product

    out: list[dict[str, str]] = []
    for start in range(0, base, 10 * BATCH):
        out += product_attributes(Product.objects.filter(pk__gt=start, pk__lte=start + 10 * BATCH).order_by("pk"))
    return out


def _copy_vectors(*, spec: ScaleSpec, encoder_row, ct: int, offset: int, attrs: list[dict[str, str]]) -> None:
    """Vectors for the copies ``offset + 1 .. offset + len(attrs)`` (their documents are written): the
    copied products' attributes with style and noise of their own, by a binary COPY."""
    from django.db import connection
    from pgvector.psycopg import register_vector

    connection.ensure_connection()
    raw = connection.connection
    register_vector(raw)
    model = VectorModel(spec.seed)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT object_id::bigint, id FROM catalog_search_document WHERE content_type_id = %s "
            "AND object_id::bigint > %s AND object_id::bigint <= %s",
            [ct, offset, offset + len(attrs)],
        )
        doc_ids = dict(cursor.fetchall())
    columns = "document_id, encoder_id, content_type_id, object_id, image, text"
    with raw.cursor() as cur, cur.copy(f"COPY catalog_search_embedding ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["bigint", "bigint", "integer", "character varying", "vector", "vector"])
        for start in range(0, len(attrs), 5 * BATCH):
            chunk = attrs[start : start + 5 * BATCH]
            # Not [seed, offset, start]: a seed sequence ignores trailing zeros, and [seed, R, 0] would
            # repeat the real batch [seed, R]'s noise.
            rng = np.random.default_rng([spec.seed, offset, start, 99])
            image, text = model.vectors(chunk, "image", rng), model.vectors(chunk, "text", rng)
            for i in range(len(chunk)):
                oid = offset + start + i + 1
                copy.write_row([doc_ids[oid], encoder_row.pk, ct, str(oid), image[i], text[i]])


def _replicate(spec: ScaleSpec, encoder_row, log) -> None:
    """Copy the real products ``products / real - 1`` times in SQL, with consistent BM25 statistics
    (and vectors of their own when ``encoder_row`` is given)."""
    from django.db import connection, transaction

    from catalog_search.registry import get_index
    from demo_project.shop.models import Product

    base = spec.real_count
    ct = get_index(Product).content_type.pk
    copies = -(-spec.products // base) - 1
    attrs = _base_attributes(base) if encoder_row is not None else []
    # Every column but the id: a field added to the demo shop is copied too.
    cols = ", ".join(f.column for f in Product._meta.concrete_fields if not f.primary_key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id), count(*) FROM shop_product")
        low, high, count = cursor.fetchone()
        assert (low, high, count) == (1, base, base), "real products must have ids 1..R"
        cursor.execute("ALTER TABLE shop_product DISABLE TRIGGER USER")  # no outbox rows for copies
        cursor.execute("ALTER TABLE catalog_search_posting DROP CONSTRAINT catalog_search_posting_pkey")
        for r in range(1, copies + 1):
            n = min(base, spec.products - r * base)
            t = time.perf_counter()
            with transaction.atomic():
                cursor.execute(
                    f"INSERT INTO shop_product (id, {cols}) SELECT id + %s, {cols} FROM shop_product "
                    "WHERE id <= %s ORDER BY id",
                    [r * base, n],
                )
                cursor.execute(
                    "INSERT INTO catalog_search_document (content_type_id, object_id, length, terms, content_hash, "
                    "error, indexed_at) SELECT content_type_id, (object_id::bigint + %s)::text, length, terms, "
                    "content_hash, error, now() FROM catalog_search_document WHERE content_type_id = %s "
                    "AND object_id::bigint <= %s ORDER BY id",
                    [r * base, ct, n],
                )
                cursor.execute(
                    "INSERT INTO catalog_search_posting (term, document_id, tf, content_type_id, object_id, length) "
                    "SELECT p.term, nd.id, p.tf, nd.content_type_id, nd.object_id, nd.length "
                    "FROM catalog_search_document od "
                    "JOIN catalog_search_document nd ON nd.content_type_id = od.content_type_id "
                    "AND nd.object_id = (od.object_id::bigint + %s)::text "
                    "JOIN catalog_search_posting p ON p.document_id = od.id "
                    "WHERE od.content_type_id = %s AND od.object_id::bigint <= %s",
                    [r * base, ct, n],
                )
                if encoder_row is not None:
                    _copy_vectors(spec=spec, encoder_row=encoder_row, ct=ct, offset=r * base, attrs=attrs[:n])
            log(f"  copy {r}/{copies}: {n} products in {time.perf_counter() - t:.0f} s")
        log("  rebuilding the posting primary key")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            "ALTER TABLE catalog_search_posting ADD CONSTRAINT catalog_search_posting_pkey "
            "PRIMARY KEY (term, document_id) INCLUDE (content_type_id, object_id, length, tf)"
        )
        cursor.execute("ALTER TABLE shop_product ENABLE TRIGGER USER")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('shop_product', 'id'), (SELECT max(id) FROM shop_product))"
        )
        # Statistics: exactly what incremental indexing would have produced, recounted from the rows.
        with transaction.atomic():
            cursor.execute(
                "UPDATE catalog_search_corpusstat c SET doc_count = d.n, total_length = d.len "
                "FROM (SELECT count(*) AS n, sum(length) AS len FROM catalog_search_document "
                "WHERE content_type_id = %s) d WHERE c.content_type_id = %s",
                [ct, ct],
            )
            cursor.execute("DELETE FROM catalog_search_termstat WHERE content_type_id = %s", [ct])
            cursor.execute(
                "INSERT INTO catalog_search_termstat (content_type_id, term, df) "
                "SELECT %s, p.term, count(*) FROM catalog_search_posting p "
                "JOIN catalog_search_document d ON d.id = p.document_id AND d.content_type_id = %s GROUP BY p.term",
                [ct, ct],
            )


def backend_peak_kib(cursor) -> int:
    """Peak resident memory (VmHWM) of the server process behind ``cursor``: the server runs here."""
    cursor.execute("SELECT pg_backend_pid()")
    status = Path(f"/proc/{cursor.fetchone()[0]}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def _build_hnsw(encoder_row) -> dict[str, Any]:
    """The production HNSW indexes, in bulk; with pgvector's notices (a graph outgrowing the memory)."""
    from django.db import connection

    from catalog_search.indexing.vectors import ensure_vector_indexes

    notices: list[str] = []
    connection.ensure_connection()
    handler = lambda diag: notices.append(diag.message_primary or "")  # noqa: E731
    connection.connection.add_notice_handler(handler)
    with connection.cursor() as cursor:
        cursor.execute(f"SET maintenance_work_mem = '{HNSW_BUILD_MEMORY}'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        ensure_vector_indexes(encoder_row)
        peak = backend_peak_kib(cursor)
    connection.connection.remove_notice_handler(handler)
    return {"maintenance_work_mem": HNSW_BUILD_MEMORY, "notices": notices, "backend_peak_mib": peak // 1024}


def load(spec: ScaleSpec, log=None) -> dict[str, Any]:
    """Fill the (empty, migrated) database of ``spec``; returns the metadata written to loaded.json."""
    from django.core.management import call_command
    from django.db import connection

    from catalog_search.encoding.encoders import get_encoder
    from catalog_search.indexing.vectors import drop_vector_indexes, ensure_encoder
    from catalog_search.models import OutboxEntry
    from demo_project.shop.catalog import generate
    from demo_project.shop.models import Product

    def say(*args: Any, **kwargs: Any) -> None:
        print(*args, **kwargs, file=sys.stderr, flush=True)

    log = log or say
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    if Product.objects.exists():
        raise SystemExit(f"{spec.data_dir} has products but no loaded.json: an interrupted load; delete the folder")
    encoder_row = None
    if spec.vectors:
        encoder_row = ensure_encoder(get_encoder())  # the random ViT-B/32: query vectors come from it
        drop_vector_indexes(encoder_row)  # rebuilt below with the same DDL, in bulk
    t = time.perf_counter()
    _insert_products(generate(spec.real_count, spec.seed))
    timings["products_s"] = time.perf_counter() - t
    log(f"  {spec.real_count} products inserted in {timings['products_s']:.0f} s")
    t = time.perf_counter()
    _index_real(spec, encoder_row, log)
    OutboxEntry.objects.all().delete()  # the trigger queued every insert; no worker runs here
    timings["index_s"] = time.perf_counter() - t
    if spec.products > spec.real_count:
        t = time.perf_counter()
        _replicate(spec, encoder_row, log)
        timings["replicate_s"] = time.perf_counter() - t
    hnsw = {}
    if encoder_row is not None:
        t = time.perf_counter()
        hnsw = _build_hnsw(encoder_row)
        timings["hnsw_s"] = time.perf_counter() - t
        log(f"  HNSW indexes built in {timings['hnsw_s']:.0f} s: {hnsw}")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    timings["total_s"] = time.perf_counter() - t0
    info = {
        "products": Product.objects.count(),
        "real": spec.real_count,
        "seed": spec.seed,
        "vectors": spec.vectors,
        "encoder_id": encoder_row.pk if encoder_row else None,
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "hnsw": hnsw,
        "loaded_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (spec.data_dir / "loaded.json").write_text(json.dumps(info, indent=1))
    return info


def check_statistics() -> dict[str, Any]:
    """Recount N, total length and every df from the rows; the stored statistics must equal them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM catalog_search_termstat t FULL JOIN (SELECT d.content_type_id, p.term, "
            "count(*) AS df FROM catalog_search_posting p JOIN catalog_search_document d ON d.id = p.document_id "
            "GROUP BY 1, 2) r ON r.content_type_id = t.content_type_id AND r.term = t.term "
            "WHERE t.df IS DISTINCT FROM r.df"
        )
        (bad_df,) = cursor.fetchone()
        cursor.execute(
            "SELECT c.doc_count, c.total_length, d.n, d.len FROM catalog_search_corpusstat c JOIN "
            "(SELECT content_type_id, count(*) AS n, sum(length) AS len FROM catalog_search_document GROUP BY 1) d "
            "ON d.content_type_id = c.content_type_id"
        )
        doc_count, total, n, length = cursor.fetchone()
    return {"df_mismatches": bad_df, "doc_count_ok": doc_count == n, "total_length_ok": abs(total - length) < 1e-6 * n}


HEADING = "## Scale data (bench/scale_data.py)"


def vector_statistics(n: int = 4000) -> dict[str, float]:
    """Mean cosine similarities of the synthetic vectors (what makes them CLIP-like), on ``n`` products."""
    from demo_project.shop.catalog import generate

    rows = [
        {"category": s.category, "type": s.slug, "color": s.color, "pattern": s.pattern, "material": s.material}
        | {"brand": s.brand}
        for s in generate(n, 1)
    ]
    model, rng = VectorModel(1), np.random.default_rng(0)
    image, text = model.vectors(rows, "image", rng), model.vectors(rows, "text", rng)
    sims = image @ image.T
    off = ~np.eye(n, dtype=bool)
    types = np.array([r["type"] for r in rows])
    same = (types[:, None] == types[None, :]) & off
    cross = text @ image.T
    return {
        "image_image_random": float(sims[off].mean()),
        "image_image_same_type": float(sims[same].mean()),
        "text_image_same_product": float(np.diag(cross).mean()),
        "text_image_random": float(cross[off].mean()),
    }


def describe(doc: Path) -> str:
    """The doc section: what the scale databases hold and how long they took to load."""
    stats = vector_statistics()
    facts = machine_facts()
    lines = [
        HEADING,
        "",
        "Command (from the project root, `.venv` active): `python bench/scale_data.py --describe` (the loads "
        "themselves: `python bench/scale_data.py --products N [--real R --no-vectors]`, run on demand by the "
        "benchmarks).",
        "",
        f"- **Machine**: `nproc` = {facts['nproc']}, {facts['cpu']}, shared with other jobs (the loads ran while "
        f"other benchmarks and other engineers' jobs used the same 2 cores); {SPEED_NOTE.format(**facts)}",
        "- **Text, documents, BM25**: the demo catalog generator (`generate(count, seed)`, text only: photos are "
        "never rendered), inserted as `shop.Product`, indexed with `indexing.build_doc` + "
        "`indexing.documents.write_documents` in batches of 2,000: real postings, lengths, df, N and avgdl.",
        "- **Vectors** (512-d, unit length, float32): synthetic, built like CLIP embeddings are shaped: a shared "
        "cone direction, an image/text modality offset, centroids for category, product type (near its "
        "category), color, pattern, material and brand, a 48-d latent style subspace and a little isotropic "
        f"noise. Mean cosine similarity: two random products' image vectors {stats['image_image_random']:.2f}, "
        f"same product type {stats['image_image_same_type']:.2f}; a product's text vector vs its own image vector "
        f"{stats['text_image_same_product']:.2f}, vs a random product's {stats['text_image_random']:.2f}. "
        "Uniform random 512-d vectors would all be ~90 degrees apart (cosine ~0 +- 0.04): no neighbourhoods, "
        "so HNSW and filtered scans would be tested on data no encoder produces.",
        "- **Encoder row and HNSW**: `indexing.ensure_encoder` with the random-weight ViT-B/32 (so the search "
        "path and the API accept the vectors and encode queries with that model); its HNSW indexes are dropped "
        "during the load and recreated with `indexing.ensure_vector_indexes` (same DDL), `maintenance_work_mem` "
        "2 GB. PostgreSQL runs with `shared_buffers` = 1 GB.",
        "- **1M**: 100k products through the real path, then 9 SQL copies (`INSERT ... SELECT` of products, "
        "documents and postings, posting primary key rebuilt after), df / N / total length recounted from the "
        "rows; `--check` recounts every statistic (0 mismatches).",
        "",
        "| database | products | through the real path | vectors | insert s | index s | HNSW s | SQL copies s | total s | loaded |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for path in sorted(BENCH_DIR.glob("scale-*/loaded.json")):
        info = json.loads(path.read_text())
        t = info["timings"]
        lines.append(
            f"| `{path.parent.name}` | {info['products']:,} | {info['real']:,} | {'yes' if info['vectors'] else 'no'} "
            f"| {t.get('products_s', '-')} | {t.get('index_s', '-')} | {t.get('hnsw_s', '-')} "
            f"| {t.get('replicate_s', '-')} | {t['total_s']} | {info['loaded_at']} |"
        )
    section = "\n".join(lines) + "\n"
    write_section(doc, section, HEADING)
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--describe", action="store_true", help="write the Scale data section of the doc and exit")
    parser.add_argument("--products", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--real", type=int, help="products through the real indexing path; the rest copied in SQL")
    parser.add_argument("--no-vectors", action="store_true", help="BM25 only: no encoder, no embeddings")
    parser.add_argument("--check", action="store_true", help="recount the BM25 statistics after loading")
    args = parser.parse_args(argv)
    if args.describe:
        print(describe(DOC))
        return 0
    if not args.products:
        parser.error("--products is required")
    spec = ScaleSpec(args.products, args.seed, args.real, not args.no_vectors)
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    setup_django(start(spec))
    info = meta(spec)
    if info is None:
        print(f"==> Loading {spec.products} products into {spec.data_dir}", file=sys.stderr)
        info = load(spec)
    print(json.dumps(info, indent=1))
    if args.check:
        print(json.dumps(check_statistics()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
