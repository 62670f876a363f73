"""Where an encoder's forward passes run: PyTorch (any checkpoint, CPU or CUDA) or ONNX Runtime (CPU).

Both take the tokenizer's / image processor's numpy arrays and return float32 arrays of projected
embeddings; the Encoder (encoders.py) does the batching, preprocessing and normalization around them.

``CATALOG_SEARCH["RUNTIME"] = "onnx"`` loads the graphs written by ``manage.py catalog_search
export-onnx`` (onnx_export.py) instead of the PyTorch weights: on CPUs with int8 dot-product
instructions (VNNI) the optimized int8 graphs encode several times faster at a cosine similarity of
about 0.999 to fp32 (docs/benchmarks.md, "Encoding runtimes"). The export records the fingerprint of
the checkpoint it came from; a stale export is refused rather than silently mixing vector spaces.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from catalog_search import conf
from catalog_search.exceptions import EncoderUnavailable

MANIFEST = "catalog_search_onnx.json"
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": bool}
RUNTIMES = ("torch", "onnx")


class Runtime(Protocol):
    kind: str
    text_inputs: set[str]  # tokenizer outputs the text graph takes
    image_inputs: set[str]  # image processor outputs the image graph takes

    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...

    def image(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...


def features(output: object) -> torch.Tensor:
    """The projected embedding from either a tensor (transformers 4) or an output object (5)."""
    if isinstance(output, torch.Tensor):
        return output
    for attr in ("pooler_output", "text_embeds", "image_embeds"):
        value = getattr(output, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"Cannot find an embedding in {type(output).__name__}")


def _pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def _threads() -> int | None:
    value = conf.settings().THREADS
    return int(value) if value else None


class TorchRuntime:
    """Eager PyTorch: works for every checkpoint transformers can load, on any device."""

    kind = "torch"

    def __init__(self, source: str, name: str, device: str | None = None):
        from transformers import AutoModel

        from catalog_search.encoding import modeling  # noqa: F401  (registers the project's own encoder with AutoModel)

        self.device = _pick_device(device or conf.settings().DEVICE)
        if (threads := _threads()) and self.device.type == "cpu":
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        try:
            self.model = AutoModel.from_pretrained(source).to(self.device).eval()
        except Exception as exc:  # OSError, ValueError, ImportError, ... from transformers/hub
            raise EncoderUnavailable(
                f"Could not load the encoder from CATALOG_SEARCH['MODEL'] = {name!r}: {exc}"
            ) from exc
        for method in ("get_text_features", "get_image_features"):
            if not hasattr(self.model, method):
                raise EncoderUnavailable(
                    f"CATALOG_SEARCH['MODEL'] = {name!r} is a {type(self.model).__name__}, which has no "
                    f"{method}(); use a dual encoder such as CLIPModel or SiglipModel."
                )
        text_params = set(inspect.signature(self.model.get_text_features).parameters)
        self.text_inputs = {"input_ids", "attention_mask", "token_type_ids"} & text_params
        # SigLIP 2 (NaFlex) also needs the processor's pixel_attention_mask and spatial_shapes.
        self.image_inputs = {"pixel_values"} | set(inspect.signature(self.model.get_image_features).parameters)

    def _tensors(self, inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {key: torch.as_tensor(value).to(self.device) for key, value in inputs.items()}

    @torch.inference_mode()
    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return features(self.model.get_text_features(**self._tensors(inputs))).float().cpu().numpy()

    @torch.inference_mode()
    def image(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return features(self.model.get_image_features(**self._tensors(inputs))).float().cpu().numpy()


def onnx_dir(name: str) -> Path:
    """Where ``export-onnx`` writes, and the onnx runtime reads, the graphs for the model ``name``:
    ``CATALOG_SEARCH["ONNX_DIR"]`` if set, else ``<model dir>/onnx`` for a local model, else a folder
    under ``$CATALOG_SEARCH_CACHE`` (default ``~/.cache/catalog_search``) for a hub id."""
    from catalog_search.encoding.sources import model_path

    if configured := conf.settings().ONNX_DIR:
        return Path(configured).expanduser()
    local = Path(model_path(name))
    if local.is_dir():
        return local / "onnx"
    cache = Path(os.environ.get("CATALOG_SEARCH_CACHE", "~/.cache/catalog_search")).expanduser()
    return cache / "onnx" / name.replace("/", "--")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


class OnnxRuntime:
    """ONNX Runtime on the CPU, from the graphs ``export-onnx`` wrote for this exact checkpoint."""

    kind = "onnx"

    def __init__(self, name: str, fingerprint: str):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EncoderUnavailable(
                "CATALOG_SEARCH['RUNTIME'] = 'onnx' needs ONNX Runtime: pip install 'catalog-search[onnx]'."
            ) from exc
        folder = onnx_dir(name)
        manifest = read_manifest(folder)
        hint = f"run `python manage.py catalog_search export-onnx` (model {name!r} -> {folder})"
        if manifest is None:
            raise EncoderUnavailable(f"No ONNX export of the encoder at {folder}: {hint}.")
        if manifest.get("fingerprint") != fingerprint:
            raise EncoderUnavailable(
                f"The ONNX export at {folder} was made from another version of {name!r} "
                f"({manifest.get('fingerprint')} != {fingerprint}): {hint}."
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads := _threads():
            options.intra_op_num_threads = threads
        try:
            self._text = ort.InferenceSession(
                str(folder / manifest["text"]), options, providers=["CPUExecutionProvider"]
            )
            self._image = ort.InferenceSession(
                str(folder / manifest["image"]), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise EncoderUnavailable(f"Could not load the ONNX export at {folder}: {exc}; {hint}.") from exc
        self.manifest = manifest
        self.text_inputs = {i.name for i in self._text.get_inputs()}
        self.image_inputs = {i.name for i in self._image.get_inputs()}
        self._dtypes = {i.name: i.type for i in [*self._text.get_inputs(), *self._image.get_inputs()]}

    def _feed(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Tokenizers return int64 or int32 depending on the backend; the graph wants what it was traced with.
        return {key: value.astype(_NUMPY_TYPES[self._dtypes[key]], copy=False) for key, value in inputs.items()}

    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._text.run(None, self._feed(inputs))[0]

    def image(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._image.run(None, self._feed(inputs))[0]


def load_runtime(kind: str, *, source: str, name: str, fingerprint: str, device: str | None = None) -> Runtime:
    if kind == "torch":
        return TorchRuntime(source, name, device)
    if kind == "onnx":
        return OnnxRuntime(name, fingerprint)
    raise EncoderUnavailable(f"CATALOG_SEARCH['RUNTIME'] = {kind!r} is not one of {', '.join(RUNTIMES)}.")
