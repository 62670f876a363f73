"""Load any transformers dual encoder and turn texts and images into L2-normalized float32 vectors.

Works with every model that has ``get_text_features`` and ``get_image_features`` (CLIPModel,
SiglipModel, VisionTextDualEncoderModel, the project's own demo encoder, ...), from a local
directory or a hub id. transformers 5 returns output objects from those methods; 4.x returned
tensors: both are handled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from catalog_search import conf
from catalog_search.encoding.preprocessing import FastImagePreprocessor
from catalog_search.encoding.runtimes import load_runtime
from catalog_search.encoding.sources import fingerprint, hub_problem, model_path
from catalog_search.exceptions import EncoderUnavailable

logger = logging.getLogger(__name__)


class Encoder:
    """A loaded dual encoder. ``identity`` names it in the index; ``dim`` is its vector size.

    The identity is the checkpoint's, whatever the runtime: the ONNX export of a checkpoint encodes into
    the same vector space (docs/benchmarks.md, "Encoding runtimes"), so switching runtimes needs no reindex."""

    def __init__(self, name: str, device: str | None = None, batch_size: int | None = None, runtime: str | None = None):
        from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

        from catalog_search.encoding import modeling  # noqa: F401  (registers the project's own encoder with AutoConfig)

        self.name = name
        source = model_path(name)
        self.batch_size = batch_size or conf.settings().ENCODE_BATCH_SIZE
        problem = hub_problem(name)
        if problem:
            raise EncoderUnavailable(
                f"Could not load the encoder from CATALOG_SEARCH['MODEL'] = {name!r}: {problem}. Save the model "
                "with save_pretrained() where the hub is reachable and point MODEL at that folder, or train one "
                "(manage.py catalog_search train); see docs/configuration.md."
            )
        try:
            config = AutoConfig.from_pretrained(source)
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.image_processor = AutoImageProcessor.from_pretrained(source)
        except Exception as exc:  # OSError, ValueError, ImportError, ... from transformers/hub
            raise EncoderUnavailable(
                f"Could not load the encoder from CATALOG_SEARCH['MODEL'] = {name!r}: {exc}"
            ) from exc
        model_fingerprint = fingerprint(name)
        self.runtime = load_runtime(
            runtime or conf.settings().RUNTIME, source=source, name=name, fingerprint=model_fingerprint, device=device
        )
        self.fast_preprocessing = conf.settings().FAST_PREPROCESSING and FastImagePreprocessor.supports(
            self.image_processor
        )
        self._preprocess = FastImagePreprocessor(self.image_processor) if self.fast_preprocessing else None
        text_config = getattr(config, "text_config", None)
        limit = getattr(text_config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self._max_length = min(int(limit), 512)
        # SigLIP was trained on max-length padding; other models use dynamic padding.
        self._padding = "max_length" if config.model_type.startswith("siglip") else True
        self.dim = int(self.encode_texts(["probe"]).shape[1])
        self.identity = f"{Path(name).name or name}@{model_fingerprint}"[-255:]

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``, shape (len(texts), dim), float32, unit length."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t or " " for t in texts[start : start + self.batch_size]]
            tokens = self.tokenizer(
                batch, padding=self._padding, truncation=True, max_length=self._max_length, return_tensors="np"
            )
            chunks.append(self.runtime.text({k: v for k, v in tokens.items() if k in self.runtime.text_inputs}))
        return _normalize(chunks, getattr(self, "dim", 0))

    def preprocess_images(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        """The image processor's arrays for ``images`` (the fast path when it applies)."""
        if self._preprocess is not None:
            return self._preprocess(images)
        return dict(self.image_processor(images=list(images), return_tensors="np"))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Vectors for RGB ``images`` (see images.open_image), float32, unit length."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.preprocess_images(images[start : start + self.batch_size])
            chunks.append(self.runtime.image({k: v for k, v in pixels.items() if k in self.runtime.image_inputs}))
        return _normalize(chunks, self.dim)


def _normalize(chunks: list[np.ndarray], dim: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, dim), dtype=np.float32)
    vectors = np.concatenate(chunks).astype(np.float32, copy=False)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)  # the same epsilon as torch.nn.functional.normalize


def normalize(vector: np.ndarray) -> np.ndarray:
    """Unit-length copy of ``vector`` (float32)."""
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


_lock = threading.Lock()
_loaded: dict[tuple[str, str], Encoder] = {}
_failed: dict[tuple[str, str], tuple[float, EncoderUnavailable]] = {}
RETRY_AFTER_SECONDS = 60.0  # a model that failed to load is tried again after this long, not per batch


def get_encoder(name: str | None = None) -> Encoder:
    """The process-wide encoder for ``name`` (default: ``CATALOG_SEARCH['MODEL']``) in the configured
    runtime, loaded once. A failure is remembered for ``RETRY_AFTER_SECONDS``."""
    name = name or conf.settings().MODEL
    key = (name, conf.settings().RUNTIME)
    with _lock:
        if key not in _loaded:
            failed = _failed.get(key)
            if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER_SECONDS:
                raise failed[1]
            logger.info("Loading encoder %s (%s runtime)", name, key[1])
            try:
                _loaded[key] = Encoder(name)
            except EncoderUnavailable as exc:
                _failed[key] = (time.monotonic(), exc)
                raise
            _failed.pop(key, None)
        return _loaded[key]


def clear_cache() -> None:
    """Forget loaded encoders and load failures (tests, or after retraining a local model)."""
    with _lock:
        _loaded.clear()
        _failed.clear()
