"""Image preprocessing for the encoders: a fast path for the common CLIP-style processor.

transformers' image processors run on PIL when torchvision is absent (the usual CPU install) and
convert between PIL and float64 numpy arrays several times, a large share of an int8 ViT-B/32 forward
pass (docs/benchmarks.md, "Encoding runtimes"). The common recipe (resize the shortest edge or to a fixed size,
center crop, rescale, normalize) is done here with one PIL resize and one float32 pass. Processors
with any other option (padding, NaFlex patches, ...) keep using transformers' own implementation.
Parity with transformers is tested (tests/test_runtimes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

# Processor attributes the fast path implements; any other enabled option sends images to transformers.
_HANDLED_FLAGS = {"do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"}
_UNHANDLED_FLAGS = ("do_pad", "do_reduce_labels", "do_image_splitting", "do_thumbnail", "do_align_long_axis")


def _present(size: Any) -> dict[str, int]:
    """The keys of a size dict that are set (transformers 5's SizeDict lists every key, unset ones as None)."""
    return {key: value for key, value in dict(size or {}).items() if value is not None}


class FastImagePreprocessor:
    """Resize + center crop + rescale + normalize exactly as the wrapped CLIP-style processor would."""

    def __init__(self, processor: Any):
        self.resize = bool(getattr(processor, "do_resize", False))
        self.size = _present(getattr(processor, "size", None))
        self.crop = _present(getattr(processor, "crop_size", None)) if processor.do_center_crop else None
        self.scale = float(processor.rescale_factor) if processor.do_rescale else 1.0
        mean = processor.image_mean if processor.do_normalize else (0.0, 0.0, 0.0)
        std = processor.image_std if processor.do_normalize else (1.0, 1.0, 1.0)
        # (x * scale - mean) / std  ==  x * a + b, per channel, computed once.
        self._a = (self.scale / np.asarray(std, dtype=np.float32)).reshape(1, 1, 3)
        self._b = (-np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)).reshape(1, 1, 3)
        self.resample = Image.Resampling(int(getattr(processor, "resample", Image.Resampling.BICUBIC)))

    @classmethod
    def supports(cls, processor: Any) -> bool:
        """Whether ``processor`` uses only the steps implemented here."""
        if any(getattr(processor, flag, False) for flag in _UNHANDLED_FLAGS):
            return False
        if not all(hasattr(processor, flag) for flag in _HANDLED_FLAGS - {"do_convert_rgb"}):
            return False
        size = _present(getattr(processor, "size", None))
        if processor.do_resize and not (set(size) == {"shortest_edge"} or set(size) == {"height", "width"}):
            return False
        crop = _present(getattr(processor, "crop_size", None))
        if processor.do_center_crop and set(crop) != {"height", "width"}:
            return False
        mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
        return not processor.do_normalize or (len(mean or ()) == 3 and len(std or ()) == 3)

    def _target_size(self, width: int, height: int) -> tuple[int, int]:
        if "shortest_edge" in self.size:
            # transformers' get_resize_output_image_size: the short side becomes `edge`, the long side is
            # scaled and truncated to int.
            edge = int(self.size["shortest_edge"])
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = edge, int(edge * long / short)
            return (new_short, new_long) if width <= height else (new_long, new_short)
        return int(self.size["width"]), int(self.size["height"])

    def _one(self, image: Image.Image) -> np.ndarray:
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.resize:
            target = self._target_size(*image.size)
            if target != image.size:
                image = image.resize(target, self.resample)
        if self.crop is not None:
            width, height = image.size
            crop_w, crop_h = int(self.crop["width"]), int(self.crop["height"])
            if crop_w > width or crop_h > height:  # transformers pads with zeros first; rare, keep it exact
                padded = Image.new("RGB", (max(width, crop_w), max(height, crop_h)))
                padded.paste(image, ((padded.width - width) // 2, (padded.height - height) // 2))
                image, width, height = padded, padded.width, padded.height
            # Same rounding as transformers' center_crop: top = (height - crop_h) // 2.
            left, top = (width - crop_w) // 2, (height - crop_h) // 2
            image = image.crop((left, top, left + crop_w, top + crop_h))
        array = np.asarray(image, dtype=np.float32)
        return (array * self._a + self._b).transpose(2, 0, 1)

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        return {"pixel_values": np.ascontiguousarray(np.stack([self._one(image) for image in images]))}
