"""Encoding runtimes and indexing throughput: what the CPU pays per photo and per typed query.

    python bench/encoding.py                # everything below, about 15 minutes on 2 cores
    python bench/encoding.py --quick        # fewer rounds and products, for a smoke run

Measured side by side in one process, interleaved round by round so that a noisy neighbour hits every
variant alike; ratios are taken within a round and then the median over rounds is reported.

1. Image forward pass, CLIP ViT-B/32 architecture (random weights: the cost is real, relevance is not),
   one batch of 32 preprocessed photos: PyTorch fp32 eager (the baseline), PyTorch dynamic int8,
   torch.compile, ONNX Runtime fp32 as exported, ONNX Runtime fp32 with the transformer fusions, and ONNX
   Runtime with fusions + int8 weights (what ``export-onnx`` writes by default).
2. ``Encoder.encode_images`` end to end on decoded photos (preprocessing + forward + normalization):
   the torch runtime with transformers' image processor versus the onnx runtime with the fast
   preprocessing.
3. One typed query (``Encoder.encode_texts([q])``, nothing cached), p50 / p95 over distinct queries.
4. Indexing throughput per 2-core worker (benchmark c of the evaluation issue): ``reindex`` of demo
   products with their photos (read from storage, decode, resize, encode, write documents, postings and
   vectors) versus the bare image forward pass over the same photos in the same run.
5. Same results: cosine of the onnx runtime's vectors to PyTorch fp32 on the trained demo encoder (catalog
   photos and titles), and the top-10 overlap of searches through both runtimes on the demo judgments.

Everything runs on a throwaway embedded PostgreSQL; results go to the "Encoding runtimes" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    DOC,
    ROOT,
    bench_env,
    build_model,
    machine_facts,
    percentile,
    section_header,
    setup_django,
    start_postgres,
    versions,
    write_section,
)

HEADING = "## Encoding runtimes (bench/encoding.py)"
PARTS = ("forward", "end_to_end", "text", "indexing", "parity")
DEMO_ENCODER = ROOT / "demo_project" / "encoder"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of every variant, one call each per round, in rotating order; one warm-up call each."""
    for fn in variants.values():
        fn()
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_to(times: dict[str, list[float]], baseline: str) -> dict[str, float]:
    """Median over rounds of (baseline time / variant time) in the same round: the speed-up."""
    return {name: median(b / t for b, t in zip(times[baseline], ts, strict=True)) for name, ts in times.items()}


# Setup ------------------------------------------------------------------------------------------------


def shopper_queries(count: int, seed: int = 5) -> list[str]:
    """What shoppers type: a color and a product word from the demo catalog's vocabulary, sometimes a
    pattern or a material ("crimson tote", "striped navy hoodie", "leather emerald handbag"); distinct."""
    import random

    from demo_project.shop.artwork import TYPES
    from demo_project.shop.catalog import PATTERN_TERMS
    from demo_project.shop.photos import COLORS

    rng = random.Random(seed)
    patterns = [term for terms in PATTERN_TERMS.values() for term in terms]
    extras = ["", "", "", "leather", "cotton", "wooden", "large", "kids", "vintage"]
    queries: dict[str, None] = {}
    while len(queries) < count:
        words = [rng.choice(rng.choice(list(COLORS.values())).terms), rng.choice(rng.choice(TYPES).terms)]
        if rng.random() < 0.25:
            words.insert(0, rng.choice(patterns))
        if extra := rng.choice(extras):
            words.insert(0, extra)
        queries[" ".join(words)] = None
    return list(queries)


def export_variants(model_dir: Path, root: Path) -> dict[str, Path]:
    """ONNX exports of the ViT-B/32: as exported, with fusions, default (fusions + int8 image), all int8."""
    from catalog_search.encoding.onnx_export import export_onnx
    from catalog_search.encoding.runtimes import MANIFEST, read_manifest

    plan = {
        "plain": {"quantize": "none", "optimize": False},
        "fused": {"quantize": "none", "optimize": True},
        "int8-plain": {"quantize": "all", "optimize": False},
        "fp32-text": {"quantize": "image", "optimize": True},
        "default": {"quantize": "auto", "optimize": True},
    }
    folders = {}
    for label, options in plan.items():
        folder = root / label
        manifest = read_manifest(folder)
        if (
            manifest is None
            or manifest.get("source_path") != str(model_dir)
            or (manifest.get("quantize"), manifest.get("optimized")) != (options["quantize"], options["optimize"])
        ):
            log(f"export-onnx ({label}) ...")
            (folder / MANIFEST).unlink(missing_ok=True)
            export_onnx(str(model_dir), folder, log=lambda _: None, **options)
        folders[label] = folder
    return folders


def demo_photos(count: int) -> tuple[list[bytes], list[str]]:
    from demo_project.shop.catalog import generate, photo_jpeg

    specs = generate(count, seed=3)
    return [photo_jpeg(spec) for spec in specs], [spec.title for spec in specs]


def encoder(model: str, runtime: str, onnx: Path | None = None, fast: bool = True) -> Any:
    from django.test import override_settings

    from catalog_search.encoding.encoders import Encoder

    overrides = {"MODEL": model, "FAST_PREPROCESSING": fast, **({"ONNX_DIR": str(onnx)} if onnx else {})}
    with override_settings(CATALOG_SEARCH=overrides):
        return Encoder(model, device="cpu", batch_size=32, runtime=runtime)


# 1-3: runtimes on ViT-B/32 ---------------------------------------------------------------------------------


def image_tower(model: Any) -> Any:
    """A copy of ``model``'s image side as a module returning the embedding, for quantize_dynamic and
    torch.compile (both transform modules; the fp32 model used by the other variants stays untouched)."""
    import copy

    import torch

    from catalog_search.encoding.runtimes import features

    class ImageTower(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return features(self.inner.get_image_features(pixel_values=pixel_values))

    return ImageTower(copy.deepcopy(model)).eval()


def image_forward(model_dir: Path, exports: dict[str, Path], images: list, rounds: int, compile_: bool) -> dict:
    import torch

    base = encoder(str(model_dir), "torch")
    pixels = base.preprocess_images(images[:32])
    tensor = torch.from_numpy(pixels["pixel_values"])

    def run(module: Any) -> np.ndarray:
        with torch.inference_mode():
            return module(tensor).float().numpy()

    variants: dict[str, Callable[[], Any]] = {"torch fp32 eager": lambda: base.runtime.image(pixels)}
    quantized = torch.ao.quantization.quantize_dynamic(
        image_tower(base.runtime.model), {torch.nn.Linear}, dtype=torch.qint8
    )
    variants["torch int8 dynamic (Linear)"] = lambda: run(quantized)
    notes = {}
    if compile_:
        compiled = torch.compile(image_tower(base.runtime.model))
        start = time.perf_counter()
        run(compiled)
        notes["compile_seconds"] = time.perf_counter() - start
        variants["torch.compile (inductor)"] = lambda: run(compiled)
    names = {
        "plain": "onnx fp32",
        "fused": "onnx fp32 + fusions",
        "int8-plain": "onnx int8, no fusions",
        "default": "onnx int8 + fusions (default)",
    }
    for label, name in names.items():
        enc = encoder(str(model_dir), "onnx", exports[label])
        variants[name] = lambda enc=enc: enc.runtime.image(pixels)
    reference = variants["torch fp32 eager"]()
    parity = {name: float(cosines(fn(), reference).min()) for name, fn in variants.items()}
    times = interleaved(variants, rounds)
    return {
        "throughput": {name: 32 / median(ts) for name, ts in times.items()},
        "speedup": ratio_to(times, "torch fp32 eager"),
        "parity": parity,
        **notes,
    }


def image_end_to_end(model_dir: Path, exports: dict[str, Path], images: list, rounds: int) -> dict:
    variants_enc = {
        "torch runtime, transformers preprocessing": encoder(str(model_dir), "torch", fast=False),
        "torch runtime, fast preprocessing": encoder(str(model_dir), "torch"),
        "onnx runtime (default export), fast preprocessing": encoder(str(model_dir), "onnx", exports["default"]),
    }
    batch = images[:32]
    times = interleaved({name: lambda e=e: e.encode_images(batch) for name, e in variants_enc.items()}, rounds)
    first = next(iter(variants_enc.values()))
    pre = {
        "transformers": lambda: first.image_processor(images=batch, return_tensors="np"),
        "fast": lambda: variants_enc["torch runtime, fast preprocessing"].preprocess_images(batch),
    }
    pre_times = interleaved(pre, rounds * 3)
    return {
        "throughput": {name: 32 / median(ts) for name, ts in times.items()},
        "speedup": ratio_to(times, "torch runtime, transformers preprocessing"),
        "preprocess_ms": {name: 1000 * median(ts) / 32 for name, ts in pre_times.items()},
    }


def text_latency(model_dir: Path, exports: dict[str, Path], queries: list[str]) -> dict:
    encoders = {
        "torch fp32 eager": encoder(str(model_dir), "torch"),
        "onnx fp32 + fusions (`--quantize image`)": encoder(str(model_dir), "onnx", exports["fp32-text"]),
        "onnx default export (`auto`)": encoder(str(model_dir), "onnx", exports["default"]),
    }
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for enc in encoders.values():
        enc.encode_texts(["warm up"])
    for i, query in enumerate(queries):
        names = list(encoders)
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            encoders[name].encode_texts([query])
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: {"p50": percentile(ts, 50), "p95": percentile(ts, 95)} for name, ts in times.items()}


# 4: indexing throughput -------------------------------------------------------------------------------------


def indexing(model_dir: Path, exports: dict[str, Path], count: int, rounds: int) -> dict:
    from django.core.management import call_command
    from django.test import override_settings

    from catalog_search.encoding.images import open_image
    from catalog_search.indexing.sync import reindex
    from catalog_search.models import OutboxEntry
    from catalog_search.registry import get_index
    from demo_project.shop.models import Product

    call_command("seed_demo_catalog", count=count, seed=4, replace=True, stdout=open("/dev/null", "w"))  # noqa: SIM115
    OutboxEntry.objects.all().delete()
    index = get_index(Product)
    encoders = {
        "torch": encoder(str(model_dir), "torch", fast=False),  # the runtime before this work
        "onnx-fp32-text": encoder(str(model_dir), "onnx", exports["fp32-text"]),  # int8 image, fp32 text
        "onnx": encoder(str(model_dir), "onnx", exports["default"]),  # the default export
    }
    decoded = [open_image(p.image.read()) for p in Product.objects.order_by("pk")]
    results: dict[str, dict[str, list[float]]] = {name: {"index": [], "forward": []} for name in encoders}
    for r in range(rounds):
        for name, enc in encoders.items():
            with override_settings(CATALOG_SEARCH={"MODEL": str(model_dir)}):
                start = time.perf_counter()
                report = reindex(index, enc, batch_size=32)
                results[name]["index"].append(report.indexed / (time.perf_counter() - start))
            pixels = [enc.preprocess_images(decoded[i : i + 32]) for i in range(0, len(decoded), 32)]
            start = time.perf_counter()
            for batch in pixels:
                enc.runtime.image(batch)
            results[name]["forward"].append(len(decoded) / (time.perf_counter() - start))
            log(
                f"  round {r + 1}: {name} index {results[name]['index'][-1]:.1f}/s forward {results[name]['forward'][-1]:.1f}/s"
            )
    OutboxEntry.objects.all().delete()
    return {
        name: {
            "products_per_s": median(v["index"]),
            "forward_images_per_s": median(v["forward"]),
            "forward_share": median(f / i for i, f in zip(v["index"], v["forward"], strict=True)),
        }
        for name, v in results.items()
    } | {
        "products": count,
        "speedup": {
            name: median(x / t for x, t in zip(v["index"], results["torch"]["index"], strict=True))
            for name, v in results.items()
        },
    }


# 5: same results on the demo encoder ------------------------------------------------------------------------


def demo_parity(root: Path, count: int) -> dict:
    from django.core.management import call_command
    from django.test import override_settings

    from catalog_search import search
    from catalog_search.encoding.encoders import clear_cache
    from catalog_search.encoding.images import open_image
    from catalog_search.encoding.onnx_export import export_onnx
    from catalog_search.indexing.sync import reindex
    from catalog_search.models import Embedding, OutboxEntry
    from catalog_search.models import Encoder as EncoderRow
    from catalog_search.offline.evaluation import load_judgments
    from catalog_search.registry import get_index
    from demo_project.shop.judgments import generate_judgments
    from demo_project.shop.models import Product

    onnx_dir = root / "demo-onnx"
    manifest = export_onnx(str(DEMO_ENCODER), onnx_dir, log=lambda _: None)
    fp32 = encoder(str(DEMO_ENCODER), "torch")
    fast = encoder(str(DEMO_ENCODER), "onnx", onnx_dir)
    call_command("seed_demo_catalog", count=count, seed=1, replace=True, stdout=open("/dev/null", "w"))  # noqa: SIM115
    OutboxEntry.objects.all().delete()
    products = list(Product.objects.order_by("pk"))
    images = [open_image(p.image.read()) for p in products]
    titles = [p.title for p in products]
    image_cos = cosines(fast.encode_images(images), fp32.encode_images(images))
    text_cos = cosines(fast.encode_texts(titles), fp32.encode_texts(titles))

    log("indexing the demo catalog with the fp32 demo encoder ...")
    Embedding.objects.all().delete()  # the ViT-B/32 of part 4 must not stay the active encoder
    EncoderRow.objects.all().delete()
    settings = {"MODEL": str(DEMO_ENCODER), "ONNX_DIR": str(onnx_dir), "QUERY_CACHE": None}
    with override_settings(CATALOG_SEARCH=settings):
        reindex(get_index(Product), fp32, batch_size=64)
    # The kinds the published overlaps were measured on (typo and price queries came later).
    counts = {"typo": 0, "price": 0}
    judgments = load_judgments(generate_judgments(root / "judgments", seed=1, counts=counts))
    overlaps: dict[str, list[float]] = {}
    ranked: dict[str, list[list[Any]]] = {}
    for runtime in ("torch", "onnx"):
        clear_cache()
        with override_settings(CATALOG_SEARCH={**settings, "RUNTIME": runtime}):
            ranked[runtime] = [
                [
                    hit.id
                    for hit in search(
                        q=j.q, image=j.image.read_bytes() if j.image else None, filters=j.filters, k=10
                    ).results
                ]
                for j in judgments
            ]
    for j, a, b in zip(judgments, ranked["torch"], ranked["onnx"], strict=True):
        kind = "photo" if j.image else "text"
        overlaps.setdefault(kind, []).append(len(set(a) & set(b)) / max(len(a), 1))
    clear_cache()
    OutboxEntry.objects.all().delete()
    return {
        "image_cos": (float(image_cos.min()), float(np.median(image_cos))),
        "text_cos": (float(text_cos.min()), float(np.median(text_cos))),
        "items": len(products),
        "overlap": {kind: (float(np.mean(v)), len(v)) for kind, v in overlaps.items()},
        "overlap_all": float(np.mean([x for v in overlaps.values() for x in v])),
        "int8": manifest["int8"],
    }


# Report -------------------------------------------------------------------------------------------------------


def render(args: argparse.Namespace, facts: dict[str, str], software: str, r: dict[str, Any]) -> str:
    command = "python bench/encoding.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = section_header(HEADING, command.strip(), facts, software, f"{args.rounds} interleaved rounds per figure")
    lines += [
        "- **Model**: CLIP ViT-B/32 architecture, random weights (`CLIPModel(CLIPConfig())`, 224 px, 512-d), "
        "exported with `catalog_search export-onnx`; parity on the trained demo encoder (MiniLM text tower, "
        "CNN image tower).",
        f"- **Threads**: library defaults (PyTorch and ONNX Runtime each use {facts['nproc']} intra-op threads).",
        "",
        "### Image forward pass, batch of 32 (ViT-B/32)",
        "",
        "| variant | images/s | speed-up vs fp32 eager (median of per-round ratios) | lowest cosine to fp32 |",
        "|---|---:|---:|---:|",
    ]
    fwd = r["forward"]
    for name, value in fwd["throughput"].items():
        lines.append(f"| {name} | {value:.1f} | {fwd['speedup'][name]:.2f}x | {fwd['parity'][name]:.4f} |")
    if "compile_seconds" in fwd:
        lines += ["", f"torch.compile's first call (compilation) took {fwd['compile_seconds']:.0f} s."]
    e2e = r["end_to_end"]
    lines += [
        "",
        "### `Encoder.encode_images` end to end, 32 decoded catalog photos (ViT-B/32)",
        "",
        "| runtime and preprocessing | images/s | speed-up |",
        "|---|---:|---:|",
    ]
    for name, value in e2e["throughput"].items():
        lines.append(f"| {name} | {value:.1f} | {e2e['speedup'][name]:.2f}x |")
    pre = e2e["preprocess_ms"]
    lines += [
        "",
        f"Preprocessing alone: transformers' CLIPImageProcessor (PIL backend, no torchvision) "
        f"{pre['transformers']:.2f} ms per photo, the fast path {pre['fast']:.2f} ms (identical pixels, tested).",
        "",
        "### One typed query, nothing cached (ViT-B/32 text tower)",
        "",
        f"{args.queries} distinct shopper-style queries of 2-4 words from the demo vocabulary (e.g. "
        f"{', '.join(repr(q) for q in r['text_examples'])}), each encoded once per runtime in rotating order.",
        "",
        "| runtime | p50 ms | p95 ms |",
        "|---|---:|---:|",
    ]
    for name, value in r["text"].items():
        lines.append(f"| {name} | {value['p50']:.1f} | {value['p95']:.1f} |")
    idx = r["indexing"]
    lines += [
        "",
        f"### Indexing throughput per 2-core worker ({idx['products']} demo products with photos, ViT-B/32)",
        "",
        "`reindex(batch_size=32)` in one process, as a Celery worker runs it (read the photo from storage, "
        "decode, resize, encode text and image, write document, postings, statistics and vectors in one "
        "transaction per batch) versus the bare image forward pass over the same photos, same run.",
        "",
        "| runtime | products/s end to end | forward pass alone, images/s | forward / end to end |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "torch": "torch (fp32, transformers preprocessing)",
        "onnx-fp32-text": "onnx `--quantize image` (int8 image, fp32 text; fast preprocessing)",
        "onnx": "onnx default export (`auto`; fast preprocessing)",
    }
    for name, label in labels.items():
        v = idx[name]
        lines.append(
            f"| {label} | {v['products_per_s']:.1f} | {v['forward_images_per_s']:.1f} | {v['forward_share']:.2f} |"
        )
    lines.append(
        f"\nEnd-to-end indexing speed-up over torch (median of per-round ratios): default export "
        f"{idx['speedup']['onnx']:.2f}x, `--quantize image` {idx['speedup']['onnx-fp32-text']:.2f}x."
    )
    p = r["parity"]
    overlap = ", ".join(f"{kind} {mean:.3f} ({n} queries)" for kind, (mean, n) in p["overlap"].items())
    lines += [
        "",
        "### Same results on the trained demo encoder (onnx default export vs PyTorch fp32)",
        "",
        f"The default export (`auto`) kept int8 for the demo's {' and '.join(t for t, q in p['int8'].items() if q) or 'no'} "
        f"tower(s) and fp32 for the {' and '.join(t for t, q in p['int8'].items() if not q) or 'no'} tower(s) "
        f"(int8 must stay within cosine 0.99 of PyTorch on the probe inputs).",
        "",
        f"- Cosine of the vectors of {p['items']} demo catalog photos: lowest {p['image_cos'][0]:.4f}, "
        f"median {p['image_cos'][1]:.5f}; of their titles: lowest {p['text_cos'][0]:.5f}, median {p['text_cos'][1]:.5f}.",
        f"- Top-10 overlap of `search()` through the two runtimes on the demo judgments (seed 1; index built "
        f"with fp32, hybrid mode, query cache off): {p['overlap_all']:.3f} overall; {overlap}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--products", type=int, default=256, help="products indexed per runtime and round")
    parser.add_argument("--demo-products", type=int, default=2000, help="demo catalog size for the parity part")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 40 queries, 64 products, 300 demo products")
    parser.add_argument("--no-doc", action="store_true", help="print only, do not update docs/benchmarks.md")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)} (implies --no-doc)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.queries, args.products, args.demo_products = 3, 40, 64, 300

    var = ROOT / "var" / "bench"
    model_dir = var / "vitb32"
    log("random-weight CLIP ViT-B/32 ...")
    build_model(model_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-encoding-"))
    url = start_postgres(work / "pgdata", throwaway=True)
    setup_django(bench_env(url, work / "var", model_dir))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    facts = machine_facts()
    exports = export_variants(model_dir, var / "vitb32-onnx")
    photos, _ = demo_photos(64)
    from catalog_search.encoding.images import open_image

    images = [open_image(p) for p in photos]
    parts = [p for p in args.parts.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    queries = shopper_queries(args.queries)
    steps: dict[str, Callable[[], Any]] = {
        "forward": lambda: image_forward(model_dir, exports, images, args.rounds, not args.no_compile),
        "end_to_end": lambda: image_end_to_end(model_dir, exports, images, args.rounds),
        "text": lambda: text_latency(model_dir, exports, queries),
        "indexing": lambda: indexing(model_dir, exports, args.products, max(2, args.rounds // 2)),
        "parity": lambda: demo_parity(work, args.demo_products),
    }
    results: dict[str, Any] = {"text_examples": queries[:3]}
    for number, part in enumerate(PARTS, 1):
        if part in parts:
            log(f"{number}. {part} ...")
            results[part] = steps[part]()
            log(json.dumps({part: results[part]}, default=str))  # kept in the log should a later part fail
    if set(parts) != set(PARTS):
        print(json.dumps(results, indent=2, default=str))
        return 0
    software = versions(["torch", "transformers", "onnxruntime", "onnx"])
    section = render(args, facts, software, results)
    print(section)
    if not args.no_doc:
        write_section(DOC, section, HEADING)
        log(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
