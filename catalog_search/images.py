"""Decode and validate images (query photos and catalog images) before any model sees them.

Limits are checked before full decoding: bytes first, then the pixel count from the header, so a
decompression bomb is refused without allocating its pixels. Everything accepted comes out as an
8-bit RGB ``PIL.Image`` with EXIF orientation applied.
"""

from __future__ import annotations

import io
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from catalog_search import conf
from catalog_search.exceptions import ImageTooLarge, InvalidImage, UnsupportedImage

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})


def read_limited(source: bytes | IO[bytes], max_bytes: int) -> bytes:
    """The bytes of ``source``, refusing more than ``max_bytes`` without reading them all."""
    data = bytes(source) if isinstance(source, bytes | bytearray) else source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The image is larger than the {max_bytes:,}-byte limit.")
    if not data:
        raise InvalidImage("The image file is empty.")
    return data


def open_image(
    source: bytes | IO[bytes], *, max_bytes: int | None = None, max_pixels: int | None = None
) -> Image.Image:
    """Decode ``source`` into an RGB image or raise a clear InvalidImage subclass."""
    max_bytes = max_bytes or conf.get("MAX_IMAGE_BYTES")
    max_pixels = max_pixels or conf.get("MAX_IMAGE_PIXELS")
    data = read_limited(source, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge("The image has too many pixels.") from None
    except UnidentifiedImageError:
        raise UnsupportedImage("The file is not an image in a supported format (JPEG, PNG, WebP, GIF).") from None
    except Exception as exc:  # Pillow raises assorted errors on malformed headers
        raise InvalidImage(f"The image could not be read: {exc}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImage(f"{image.format} images are not supported; send JPEG, PNG, WebP or GIF.")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage("The image has no pixels.")
    if width * height > max_pixels:
        raise ImageTooLarge(f"The image has {width}x{height} pixels; the limit is {max_pixels:,} pixels.")
    try:
        image.seek(0)  # first frame of an animation
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"The image is truncated or corrupt: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: alpha composited on white, palettes expanded, 16-bit and float scaled, CMYK converted."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        scaled = np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
