"""Product photos composed from artwork: recolored, optionally patterned, on a studio background.

Everything random comes from the ``random.Random`` passed in, so a photo is a pure function of its
artwork, color, pattern and seed: the same seed gives byte-identical JPEGs, and continuous random
placement and lighting make every product's picture different.
"""

from __future__ import annotations

import colorsys
import io
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from demo_project.shop.artwork import HELD_OUT_SET, render

PHOTO_SIZE = 160
PATTERNS = ("solid", "striped", "dotted", "checked")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Color:
    """A catalog color: the canonical name stored on products, its RGB, and words titles may use for it."""

    name: str
    rgb: tuple[int, int, int]
    synonyms: tuple[str, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms)

    @property
    def luma(self) -> float:
        return float(np.dot(np.array(self.rgb, dtype=np.float32) / 255, _LUMA))


# RGB values far enough apart to stay distinguishable after shading, lighting and JPEG (navy vs blue vs black).
COLORS: dict[str, Color] = {
    c.name: c
    for c in (
        Color("red", (200, 28, 36), ("crimson", "scarlet", "cherry red")),
        Color("orange", (242, 118, 20), ("tangerine", "burnt orange", "pumpkin")),
        Color("yellow", (246, 206, 30), ("mustard", "lemon", "sunflower yellow")),
        Color("green", (40, 150, 62), ("forest green", "emerald", "kelly green")),
        Color("teal", (0, 128, 128), ("petrol", "dark turquoise", "teal blue")),
        Color("blue", (32, 92, 212), ("cobalt", "royal blue", "azure")),
        Color("navy", (22, 36, 96), ("navy blue", "dark blue", "midnight blue")),
        Color("purple", (116, 50, 160), ("violet", "plum", "aubergine")),
        Color("pink", (240, 122, 172), ("rose", "blush pink", "bubblegum pink")),
        Color("brown", (118, 70, 34), ("chocolate", "cognac", "chestnut")),
        Color("black", (26, 26, 28), ("jet black", "onyx", "ebony")),
        Color("white", (242, 242, 238), ("off-white", "snow white", "optic white")),
        Color("grey", (128, 128, 130), ("gray", "charcoal grey", "slate grey")),
        Color("beige", (214, 194, 158), ("sand", "camel", "oatmeal")),
    )
}


def _shade(art: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """Recolor RGB ``art`` (floats 0-1) to the per-pixel ``tint`` while keeping its shading and outlines.

    Each pixel's luminance relative to the artwork's median becomes a shift towards black or white, so the
    median tone is exactly the named color, outlines stay dark and highlights lighter (tamed, to stay on hue).
    """
    luma = art[..., :3] @ _LUMA
    visible = art[..., 3] > 0.5
    mid = float(np.median(luma[visible])) if visible.any() else 0.5
    shift = np.clip((luma - mid) * 1.6, -1.0, 1.0)[..., None]
    return np.where(shift >= 0, tint + (1.0 - tint) * shift * 0.6, tint * (1.0 + shift))


def _stripes(u: np.ndarray, period: float, width: float) -> np.ndarray:
    """Anti-aliased stripes: 1 within ``width`` (a fraction of ``period``) of each stripe's center."""
    distance = np.abs((u / period) % 1.0 - 0.5) * period
    return np.clip(width * period / 2 - distance + 0.5, 0.0, 1.0)


def pattern_mask(height: int, width: int, pattern: str, rng: random.Random) -> np.ndarray:
    """Coverage (0-1) of the second color for ``pattern``, in the artwork's own coordinates."""
    if pattern == "solid":
        return np.zeros((height, width), dtype=np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = math.radians(rng.choice((0, 0, 45, 90, -45)) + rng.uniform(-8, 8))
    u = x * math.cos(angle) + y * math.sin(angle) + rng.uniform(0, 50)
    v = -x * math.sin(angle) + y * math.cos(angle) + rng.uniform(0, 50)
    if pattern == "striped":
        return _stripes(u, rng.uniform(11, 20), rng.uniform(0.3, 0.45))
    if pattern == "dotted":
        period = rng.uniform(12, 18)
        row = np.floor(v / period)
        cu = ((u / period + 0.5 * (row % 2)) % 1.0 - 0.5) * period  # staggered rows, like a polka-dot print
        cv = ((v / period) % 1.0 - 0.5) * period
        return np.clip(period * rng.uniform(0.22, 0.3) - np.hypot(cu, cv) + 0.5, 0.0, 1.0)
    if pattern == "checked":
        period = rng.uniform(12, 20)
        return (_stripes(u, period, 0.5) + _stripes(v, period, 0.5)) / 2  # gingham: 0, half and full overlap
    raise ValueError(f"Unknown pattern {pattern!r}; expected one of {PATTERNS}.")


def _second_color(color: Color, pattern: str, rng: random.Random) -> np.ndarray:
    """The pattern's other color: white on dark colors, dark on light ones; gingham mixes with white."""
    base = np.array(color.rgb, dtype=np.float32) / 255
    if pattern == "checked":
        return base + (1.0 - base) * 0.75 if color.luma < 0.8 else base * 0.45
    if color.luma < 0.6:
        return np.array(COLORS["white"].rgb, dtype=np.float32) / 255
    return np.array(COLORS[rng.choice(("navy", "black", "red"))].rgb, dtype=np.float32) / 255


def colorize(art: Image.Image, color: str, pattern: str, rng: random.Random) -> Image.Image:
    """``art`` recolored to the named ``color`` (with ``pattern`` inside its silhouette), alpha kept."""
    spec = COLORS[color]
    pixels = np.asarray(art.convert("RGBA"), dtype=np.float32) / 255
    mask = pattern_mask(pixels.shape[0], pixels.shape[1], pattern, rng)[..., None]
    base = np.array(spec.rgb, dtype=np.float32) / 255
    tint = base * (1.0 - mask) + _second_color(spec, pattern, rng) * mask if pattern != "solid" else base
    rgb = _shade(pixels, np.broadcast_to(tint, pixels[..., :3].shape))
    out = np.concatenate([rgb, pixels[..., 3:]], axis=-1)
    return Image.fromarray(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8), "RGBA")


def _background(size: int, rng: random.Random) -> np.ndarray:
    """A studio backdrop: mostly light, softly tinted, with a linear or radial gradient."""
    lightness = rng.choices(
        (rng.uniform(0.82, 0.98), rng.uniform(0.58, 0.8), rng.uniform(0.2, 0.38)), weights=(7, 2, 1)
    )[0]
    hue, saturation = rng.random(), rng.uniform(0.0, 0.14)
    near = np.array(colorsys.hsv_to_rgb(hue, saturation, lightness), dtype=np.float32)
    far = near * rng.uniform(0.78, 0.95)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle) + 0.5
    else:
        cx, cy = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
        ramp = np.hypot(x - cx, y - cy) * rng.uniform(1.0, 1.6)
    ramp = np.clip(ramp, 0.0, 1.0)[..., None]
    return near * (1.0 - ramp) + far * ramp


def product_photo(art: Image.Image, color: str | None, pattern: str, rng: random.Random) -> Image.Image:
    """A square studio photo of ``art`` recolored to ``color`` (None keeps the artwork's own colors).

    Random mirror, rotation, scale, offset, soft shadow, light falloff, white balance and sensor noise.
    """
    item = colorize(art, color, pattern, rng) if color is not None else art.convert("RGBA")
    if rng.random() < 0.5:
        item = item.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    item = item.rotate(rng.uniform(-18, 18), resample=Image.Resampling.BICUBIC, expand=True)
    item = item.crop(item.getchannel("A").getbbox())
    scale = rng.uniform(0.55, 0.85) * PHOTO_SIZE / max(item.size)
    item = item.resize(
        (max(1, round(item.width * scale)), max(1, round(item.height * scale))), Image.Resampling.LANCZOS
    )

    margin = 4
    slack_x, slack_y = PHOTO_SIZE - item.width - 2 * margin, PHOTO_SIZE - item.height - 2 * margin
    left = margin + round(slack_x * rng.uniform(0.15, 0.85))
    top = margin + round(slack_y * rng.uniform(0.15, 0.85))
    alpha = Image.new("L", (PHOTO_SIZE, PHOTO_SIZE), 0)
    alpha.paste(item.getchannel("A"), (left, top))
    shadow = Image.new("L", (PHOTO_SIZE, PHOTO_SIZE), 0)
    shadow.paste(alpha.filter(ImageFilter.GaussianBlur(rng.uniform(2.5, 6))), (rng.randint(-3, 3), rng.randint(2, 7)))

    photo = _background(PHOTO_SIZE, rng)
    photo *= 1.0 - rng.uniform(0.2, 0.45) * (np.asarray(shadow, dtype=np.float32)[..., None] / 255)
    layer = Image.new("RGBA", (PHOTO_SIZE, PHOTO_SIZE), (0, 0, 0, 0))
    layer.paste(item, (left, top))
    layer_px = np.asarray(layer, dtype=np.float32) / 255
    photo = photo * (1.0 - layer_px[..., 3:]) + layer_px[..., :3] * layer_px[..., 3:]

    # Lighting: a key light from one side, overall exposure, a slightly warm or cool white balance.
    y, x = np.mgrid[0:PHOTO_SIZE, 0:PHOTO_SIZE].astype(np.float32) / (PHOTO_SIZE - 1) - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    falloff = 1.0 + rng.uniform(0.0, 0.22) * (x * math.cos(angle) + y * math.sin(angle))
    balance = np.array([1.0 + rng.uniform(-0.04, 0.04), 1.0, 1.0 + rng.uniform(-0.04, 0.04)], dtype=np.float32)
    photo = photo * falloff[..., None] * balance * rng.uniform(0.92, 1.08)
    noise = np.random.default_rng(rng.getrandbits(64)).normal(0.0, rng.uniform(0.0, 0.012), photo.shape)
    photo = np.clip(photo + noise, 0.0, 1.0)
    return Image.fromarray(np.round(photo * 255).astype(np.uint8), "RGB")


def to_jpeg(image: Image.Image, rng: random.Random) -> bytes:
    """``image`` as JPEG bytes at a random quality between 70 and 95, like photos from many sources."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=rng.randint(70, 95))
    return buffer.getvalue()


def customer_photo(slug: str, seed: int, color: str | None = None, pattern: str = "solid") -> bytes:
    """A "customer photo" of product type ``slug`` as JPEG, drawn from the held-out art set.

    With ``color`` the artwork is recolored like catalog photos; without, it keeps its own colors.
    The catalog never uses this art set, so photo search is evaluated on pictures it has never seen.
    """
    rng = random.Random(f"customer/{slug}/{seed}/{color}/{pattern}")
    return to_jpeg(product_photo(render(HELD_OUT_SET, slug), color, pattern, rng), rng)
