"""Export a dual encoder's two towers to ONNX, optimized and int8-quantized, for the onnx runtime.

``manage.py catalog_search export-onnx`` calls :func:`export_onnx`. Steps, and why:

1. Trace ``get_text_features`` and ``get_image_features`` separately (dynamic batch and sequence axes):
   search encodes one text at a time, indexing encodes batches of images.
2. Fuse transformer subgraphs (LayerNorm + residual, GELU variants) with ONNX Runtime's transformer
   optimizer (hardware independent). Alone it gains little in fp32; it matters for the int8 graph
   (bench/encoding.py measures both).
3. Quantize MatMul/Gemm weights to int8 per output channel, activations dynamically per batch
   (``quantize_dynamic``): the dot products run on VNNI/AMX int8 units. Convolutions stay fp32 (ONNX
   Runtime's integer convolution is slower than its fp32 one on CPU). With ``quantize="auto"`` a tower
   keeps its int8 graph only if it stays within MIN_COSINE of PyTorch on the probe inputs.
4. Check parity: the chosen graphs encode probe texts and images next to the PyTorch model; the lowest
   cosine similarity is stored in the manifest and printed.
5. Only then replace the previous export: manifest removed, graphs moved in, manifest written last. A
   failed export leaves the previous one untouched; an interrupted move leaves no manifest, so the runtime
   never loads a half-replaced pair of graphs.

The manifest also records the source checkpoint's fingerprint, so the runtime refuses a stale export.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from catalog_search.encoding.runtimes import MANIFEST, TorchRuntime, features

# Which towers get int8 weights. "auto" (the default) quantizes both towers and keeps a tower's int8 graph
# only if it stays within MIN_COSINE of PyTorch on the probe inputs; otherwise that tower stays fp32 (with
# the fusions). Measured: int8 keeps image towers at cosine >= 0.9998 (CLIP ViT-B/32, the demo CNN), and the
# ViT-B/32 text tower at >= 0.999, but the demo's MiniLM text tower drops to 0.97-0.98 on one-word queries:
# auto keeps that one fp32. "image", "all" and "none" force the choice.
QUANTIZE_CHOICES = ("auto", "image", "all", "none")
MIN_COSINE = 0.99
# Probe texts: what shoppers type, down to one letter or word (where int8 errors are largest), and longer
# product descriptions (what indexing encodes).
PARITY_TEXTS = [
    "x", "a", "red", "tote", "mug", "gown", "shoes", "crimson", "sneakers", "laptop",
    "red leather tote", "blue running shoes", "navy polka-dot dress", "wooden chair", "kids backpack",
    "a pair of blue running shoes", "striped cotton t-shirt in forest green", "burnt orange candy-stripe mug",
    "wooden chair with a striped cushion", "ruby pocketbook", "plaid cravat", "Acme 14 inch laptop sleeve",
    "Soft merino scarf in heather grey, 180 x 30 cm. Warm, light and easy to care for: machine washable at "
    "30 degrees. A classic for every season, from the Northwind winter collection.",
    "Stainless steel frying pan with a riveted handle, 28 cm, induction ready; oven safe up to 250 degrees.",
]  # fmt: skip


class ExportError(Exception):
    """The model cannot be exported (an operator ONNX has no equivalent for, ...); the torch runtime still works."""


class _Tower(torch.nn.Module):
    """One tower of a dual encoder as a module with positional tensor inputs, for tracing."""

    def __init__(self, model: torch.nn.Module, method: str, names: list[str]):
        super().__init__()
        self.model, self.method, self.names = model, method, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return features(getattr(self.model, self.method)(**dict(zip(self.names, tensors, strict=True))))


def _sample_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(320, 240), (200, 300), (96, 96)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _optimizer_type(config: Any, tower: str) -> str | None:
    """The ONNX Runtime transformer-optimizer recipe for a tower, or None for a non-transformer tower."""
    if config.model_type == "clip":
        return "clip"
    if tower == "text":
        return "bert"  # BERT-style encoders: MiniLM, SigLIP's text tower, VisionTextDualEncoder's BERT
    vision = getattr(config, "vision_config", None)
    return "vit" if vision is not None else None  # e.g. the demo encoder's CNN: nothing to fuse


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def export_onnx(
    name: str,
    output: Path,
    *,
    quantize: str = "auto",
    optimize: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write ``text[.int8].onnx``, ``image[.int8].onnx`` and the manifest to ``output``; returns the
    manifest. ``quantize``: which towers get int8 weights ("auto", "image", "all" or "none")."""
    import onnxruntime as ort
    import transformers

    from catalog_search.encoding.encoders import Encoder
    from catalog_search.encoding.sources import fingerprint, model_path

    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES}, not {quantize!r}")
    started = time.perf_counter()
    reference = Encoder(name, device="cpu", batch_size=8, runtime="torch")
    runtime = reference.runtime
    assert isinstance(runtime, TorchRuntime)
    model = runtime.model

    def tokenize(texts: list[str]) -> Any:
        return reference.tokenizer(
            texts, padding=reference._padding, truncation=True, max_length=reference._max_length, return_tensors="np"
        )

    tokens = tokenize(["a red bag", "two shoes"])
    text_names = [key for key in tokens if key in runtime.text_inputs]
    images = _sample_images()[:2]
    pixels = reference.preprocess_images(images)
    image_names = [key for key in pixels if key in runtime.image_inputs]

    output.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=output))
    try:
        candidates: dict[str, dict[str, Path]] = {}
        for tower, method, names, sample in (
            ("text", "get_text_features", text_names, tokens),
            ("image", "get_image_features", image_names, pixels),
        ):
            log(f"Exporting the {tower} tower ...")
            path = work / f"{tower}.onnx"
            inputs = tuple(torch.as_tensor(sample[key]) for key in names)
            axes = {key: ({0: "batch", 1: "sequence"} if tower == "text" else {0: "batch"}) for key in names}
            with torch.no_grad(), warnings.catch_warnings():
                # Tracer warnings about shape-dependent Python branches: the traced branches are the ones
                # every input takes (batch and sequence stay dynamic); parity is checked below.
                warnings.simplefilter("ignore")
                _trace(model, method, names=names, inputs=inputs, axes=axes, path=path, tower=tower)
            recipe = _optimizer_type(model.config, tower) if optimize else None
            if recipe:
                log(f"Optimizing the {tower} graph ({recipe} fusions) ...")
                path = _optimize(path, recipe, log)
            graphs = {"fp32": path}
            if quantize in ("auto", "all", tower):
                log(f"Quantizing the {tower} graph to int8 ...")
                graphs["int8"] = _quantize(path)
            candidates[tower] = graphs

        log("Checking parity with PyTorch ...")
        text_tokens = tokenize(PARITY_TEXTS)
        image_pixels = reference.preprocess_images(_sample_images())
        feeds = {
            "text": {k: np.asarray(text_tokens[k]).astype(np.int64) for k in text_names},
            "image": {k: np.asarray(image_pixels[k]) for k in image_names},
        }
        references = {"text": runtime.text(feeds["text"]), "image": runtime.image(feeds["image"])}
        files: dict[str, str] = {}
        parity: dict[str, float] = {}
        for tower, graphs in candidates.items():
            scores = {
                kind: _min_cosine(
                    ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).run(None, feeds[tower])[0],
                    references[tower],
                )
                for kind, graph in graphs.items()
            }
            use_int8 = "int8" in graphs and (quantize != "auto" or scores["int8"] >= MIN_COSINE)
            if quantize == "auto" and "int8" in graphs:
                verdict = "int8 kept" if use_int8 else f"below {MIN_COSINE}, kept fp32"
                log(f"  {tower} tower: int8 lowest cosine {scores['int8']:.4f} on the probes: {verdict}")
            kind = "int8" if use_int8 else "fp32"
            final = work / f"{tower}{'.int8' if use_int8 else ''}.final.onnx"
            graphs[kind].rename(final)
            files[tower] = f"{tower}.int8.onnx" if use_int8 else f"{tower}.onnx"
            parity[tower] = scores[kind]
        manifest = {
            "format": 1,
            "source": name,
            "fingerprint": fingerprint(name),
            "source_path": model_path(name),
            "text": files["text"],
            "image": files["image"],
            "quantize": quantize,
            "int8": {tower: file.endswith(".int8.onnx") for tower, file in files.items()},
            "optimized": optimize,
            "dim": reference.dim,
            "min_cosine_to_torch": {k: round(v, 6) for k, v in parity.items()},
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.perf_counter() - started, 1),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "onnxruntime": ort.__version__,
            },
        }
        # Replace the previous export only now: a failed export leaves it as it was. Without a manifest
        # in between, no process loads a half-replaced pair of graphs.
        (output / MANIFEST).unlink(missing_ok=True)
        for tower, file in files.items():
            shutil.move(
                str(work / f"{tower}{'.int8' if file.endswith('.int8.onnx') else ''}.final.onnx"), output / file
            )
        (output / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for stale in output.glob("*.onnx"):  # graphs of an earlier export with other quantization
            if stale.name not in files.values():
                stale.unlink()
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _trace(model: Any, method: str, *, names: list[str], inputs: tuple, axes: dict, path: Path, tower: str) -> None:
    try:
        torch.onnx.export(
            _Tower(model, method, names).eval(),
            inputs,
            str(path),
            input_names=names,
            output_names=["embeds"],
            dynamic_axes={**axes, "embeds": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter handles the dual encoders tested here
        )
    except Exception as exc:  # torch.onnx's UnsupportedOperatorError, tracer errors, ...
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"The {tower} tower of {type(model).__name__} cannot be exported to ONNX: {first_line}. "
            "Keep CATALOG_SEARCH['RUNTIME'] = 'torch' for this model."
        ) from exc


def _optimize(path: Path, recipe: str, log: Callable[[str], None]) -> Path:
    from onnxruntime.transformers.optimizer import optimize_model

    target = path.with_suffix(".opt.onnx")
    try:
        # num_heads=0 / hidden_size=0: read from the graph. opt_level 1 keeps the graph portable
        # (higher levels bake in this machine's instruction set).
        optimized = optimize_model(str(path), model_type=recipe, num_heads=0, hidden_size=0, opt_level=1)
        optimized.save_model_to_file(str(target))
    except Exception as exc:  # a fusion pattern the optimizer does not know: keep the plain graph
        log(f"  optimizer skipped ({exc.__class__.__name__}: {exc}); the plain graph is kept")
        return path
    fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    log(f"  fused: {', '.join(f'{op} x{n}' for op, n in fused.items()) or 'nothing'}")
    return target


def _quantize(path: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.with_suffix(".int8.onnx")
    quantize_dynamic(
        str(path),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # 7-bit weights: without VNNI (AVX2 only) ONNX Runtime's u8 x s8 products saturate, which costs
        # accuracy on such CPUs (docs/encoding.md); VNNI CPUs lose next to nothing.
        reduce_range=True,
        op_types_to_quantize=["MatMul", "Gemm"],
        # Fused contrib ops hide some tensor types from shape inference; they are all float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return target
