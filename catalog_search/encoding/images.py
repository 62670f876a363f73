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

# MPO is how Pillow names a JPEG carrying extra pictures (most phone and camera photos): a JPEG to us.
MAX_ASPECT_RATIO = 20
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF"})
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")


def _looks_accepted(data: bytes) -> bool:
    """Whether ``data`` starts like a format we accept (so a failure to decode it means it is corrupt)."""
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def read_limited(source: bytes | IO[bytes], max_bytes: int) -> bytes:
    """The bytes of ``source``, refusing more than ``max_bytes`` without reading them all."""
    data = bytes(source) if isinstance(source, bytes | bytearray | memoryview) else source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The image is larger than the {max_bytes:,}-byte limit.")
    if not data:
        raise InvalidImage("The image file is empty.")
    return data


def open_image(
    source: bytes | IO[bytes], *, max_bytes: int | None = None, max_pixels: int | None = None
) -> Image.Image:
    """Decode ``source`` into an RGB image or raise a clear InvalidImage subclass."""
    max_bytes = max_bytes or conf.settings().MAX_IMAGE_BYTES
    max_pixels = max_pixels or conf.settings().MAX_IMAGE_PIXELS
    data = read_limited(source, max_bytes)
    try:
        with warnings.catch_warnings():
            # max_pixels below decides; Pillow's own warning threshold would override a larger setting.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageTooLarge("The image has too many pixels.") from None
    except UnidentifiedImageError:
        if _looks_accepted(data):
            raise InvalidImage("The image is truncated or corrupt.") from None
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
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        # The encoders' resize to a square input would blow such a strip up to millions of pixels.
        raise InvalidImage(f"The image is {width}x{height}: sides more than {MAX_ASPECT_RATIO}:1 are not accepted.")
    side = conf.settings().MAX_IMAGE_SIDE
    try:
        image.seek(0)  # first frame of an animation
        image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale directly (much faster)
        image.load()
        image = ImageOps.exif_transpose(image)
        image = to_rgb(image)
        image.thumbnail((side, side), Image.Resampling.BICUBIC)  # encoders look at ~224 px anyway
        return image
    except Image.DecompressionBombError:
        raise ImageTooLarge("The image has too many pixels.") from None
    except Exception as exc:  # corrupt data surfaces as assorted errors (OSError, struct.error, KeyError, ...)
        raise InvalidImage(f"The image is truncated or corrupt: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: alpha composited on white, palettes expanded, 16-bit and float scaled, CMYK converted."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        scaled = np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    # Alpha channels, and palette or colour-key (PNG tRNS) transparency, become RGBA to composite.
    if mode in ("LA", "PA", "La", "RGBa") or (mode in ("P", "1", "L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
