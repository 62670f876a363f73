"""The demo shop's synthetic catalog: deterministic product specs that read like a real shop's.

``generate(count, seed)`` spreads products evenly over every type and color, and writes titles and
descriptions from varied templates with brands, materials, sizes and synonyms, so keyword search has
realistic text and an encoder trained on it learns "crimson" and "trainers", not just "red sneaker".
Product ``i`` depends only on ``(seed, i)`` and the shuffles before it, so a larger count extends a
smaller catalog. Photos are rendered on demand from each spec's ``photo_seed`` (see ``photo_jpeg``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from demo_project.shop.artwork import CATALOG_SETS, TYPES, TYPES_BY_SLUG, ArtType, render
from demo_project.shop.photos import COLORS, product_photo, to_jpeg


@dataclass(frozen=True)
class Brand:
    name: str
    categories: frozenset[str]
    tier: float  # price multiplier: budget brands below 1, premium above


BRANDS: tuple[Brand, ...] = tuple(
    Brand(name, frozenset(categories.split()), tier)
    for name, categories, tier in (
        ("Nordlys", "apparel bags accessories home", 1.2),
        ("Alder & Finch", "apparel footwear bags", 1.3),
        ("Kestrel", "footwear sports bags", 1.1),
        ("Maison Lumo", "home kitchen", 1.25),
        ("Voltaris", "electronics", 1.15),
        ("Pixelwave", "electronics toys", 0.95),
        ("Brightside", "toys kitchen home", 0.85),
        ("Tidewater", "apparel footwear sports bags", 1.0),
        ("Copperleaf", "kitchen home", 1.05),
        ("Ostara", "accessories apparel footwear", 1.4),
        ("Kumo", "electronics home kitchen", 1.0),
        ("Fjellvind", "sports footwear apparel bags", 1.15),
        ("Little Otter", "toys apparel", 0.9),
        ("Marlowe & Co", "accessories bags", 1.35),
    )
)

PATTERN_TERMS: dict[str, tuple[str, ...]] = {
    "striped": ("striped", "pinstripe", "candy-stripe"),
    "dotted": ("polka-dot", "dotted", "spotted"),
    "checked": ("checked", "gingham", "check"),
}
PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "striped": ("bold stripes", "classic Breton stripes", "candy stripes"),
    "dotted": ("playful polka dots", "all-over dots", "a spotted design"),
    "checked": ("a gingham check", "a classic check", "a checked design"),
}

# Word tables, kept one compact row per entry.
# fmt: off
MATERIALS: dict[str, tuple[str, ...]] = {
    "jersey": ("cotton", "organic cotton", "cotton-linen blend", "recycled polyester", "bamboo jersey", "merino wool"),
    "denim": ("stretch denim", "organic cotton denim", "raw denim", "selvedge denim"),
    "fabric": ("cotton", "linen", "viscose", "silk", "organic cotton", "recycled polyester"),
    "outerwear": ("wool blend", "quilted nylon", "waxed cotton", "recycled down", "softshell", "cashmere blend"),
    "swim": ("recycled nylon", "Lycra blend", "quick-dry polyester"),
    "knit": ("cotton", "merino wool", "cashmere", "bamboo", "wool blend", "alpaca"),
    "footwear": ("leather", "suede", "canvas", "breathable mesh", "vegan leather", "knit"),
    "leather": ("leather", "patent leather", "suede", "nubuck", "vegan leather"),
    "sandal": ("leather", "rubber", "EVA foam", "cork", "vegan leather"),
    "bag": ("leather", "vegan leather", "canvas", "recycled nylon", "suede", "waxed canvas"),
    "hardcase": ("polycarbonate", "aluminium", "recycled polypropylene"),
    "woven": ("rattan", "seagrass", "wicker", "straw", "raffia"),
    "eyewear": ("acetate", "titanium", "stainless steel", "recycled plastic"),
    "jewelry": ("sterling silver", "gold-plated brass", "stainless steel", "titanium", "enamel"),
    "watch": ("stainless steel", "titanium", "ceramic", "aluminium"),
    "umbrella": ("windproof polyester", "pongee", "recycled nylon"),
    "tie": ("silk", "wool", "jacquard silk", "knitted silk", "linen"),
    "upholstery": ("velvet", "linen", "bouclé", "leather", "corduroy", "performance fabric"),
    "wood": ("oak", "walnut", "beech", "ash", "pine", "lacquered wood"),
    "wax": ("soy wax", "beeswax", "rapeseed wax", "coconut wax"),
    "frame": ("oak", "aluminium", "brass", "walnut", "lacquered wood"),
    "metal": ("metal", "brass", "enamelled steel", "aluminium"),
    "ceramic": ("ceramic", "stoneware", "porcelain", "bone china", "terracotta"),
    "cookware": ("cast iron", "stainless steel", "non-stick aluminium", "carbon steel", "enamelled cast iron", "copper"),
    "blade": ("stainless steel", "Damascus steel", "high-carbon steel", "ceramic"),
    "glass": ("glass", "crystal glass", "recycled glass", "borosilicate glass"),
    "device": ("aluminium", "matte plastic", "recycled plastic", "anodised aluminium"),
    "ball": ("synthetic leather", "rubber", "PU leather", "composite leather"),
    "racket": ("carbon fibre", "graphite", "aluminium", "wood"),
    "board": ("maple", "bamboo", "fibreglass", "birch plywood"),
    "frame_metal": ("aluminium", "steel", "chromoly steel", "carbon fibre"),
    "tent": ("ripstop nylon", "polyester", "polycotton canvas"),
    "plush": ("plush", "organic cotton", "faux fur", "recycled polyester plush"),
    "toy": ("wood", "recycled plastic", "BPA-free plastic", "die-cast metal", "bioplastic"),
    "kite": ("ripstop nylon", "polyester", "paper and bamboo"),
    "puzzle": ("cardboard", "recycled cardboard", "wood"),
    "wood_toy": ("lime wood", "birch", "painted wood", "beech wood"),
}
MATERIAL_PRICE = {
    "leather": 1.3, "patent leather": 1.3, "silk": 1.35, "jacquard silk": 1.4, "cashmere": 1.6,
    "cashmere blend": 1.35, "merino wool": 1.25, "alpaca": 1.4, "selvedge denim": 1.4, "titanium": 1.4,
    "sterling silver": 1.3, "walnut": 1.3, "bouclé": 1.2, "velvet": 1.15, "Damascus steel": 1.6,
    "carbon fibre": 1.5, "copper": 1.4, "crystal glass": 1.3, "bone china": 1.3, "chromoly steel": 1.2,
    "recycled plastic": 0.9, "vegan leather": 0.9, "EVA foam": 0.7, "rubber": 0.85, "cardboard": 0.9,
}
# Prints exist on textiles, ceramics and soft toys; a dotted bicycle or striped laptop would not be a product.
PRINTABLE = {"jersey", "fabric", "knit", "swim", "outerwear", "footwear", "bag", "umbrella", "tie", "upholstery"}
PRINTABLE |= {"ceramic", "plush", "kite"}
PATTERN_SHARE = 0.3  # of printable products; the rest, and every other type, is solid

AUDIENCES = ("men's", "women's", "unisex", "kids'")
AUDIENCE_BY_TYPE = {
    "dress": ("women's", "girls'"), "blouse": ("women's",), "swimsuit": ("women's", "girls'"),
    "high-heels": ("women's",), "sandals": ("women's",), "boots": ("women's",), "flats": ("women's", "girls'"),
    "oxford-shoes": ("men's", "women's"),
}
SHOE_SIZES = {"men's": (40, 46), "women's": (36, 42), "unisex": (36, 46), "kids'": (28, 35), "girls'": (28, 35)}

LINES = ("Classic", "Everyday", "Studio", "Essential", "Heritage", "Urban", "Nova", "Signature", "Atelier", "Lite")
ADJECTIVES = ("classic", "modern", "minimal", "timeless", "everyday", "premium", "lightweight", "sturdy", "elegant")
USES: dict[str, tuple[str, ...]] = {
    "apparel": ("everyday wear", "the office", "weekends away", "warm summer days", "layering"),
    "footwear": ("city walks", "long days on your feet", "weekend adventures", "every season"),
    "bags": ("the daily commute", "travel", "nights out", "everyday essentials"),
    "accessories": ("every day", "special occasions", "gifting", "finishing an outfit"),
    "home": ("living rooms", "small apartments", "cosy evenings", "modern homes"),
    "kitchen": ("everyday cooking", "weekend brunches", "entertaining guests", "the home barista"),
    "electronics": ("work and play", "the home office", "creators on the go", "movie nights"),
    "sports": ("training sessions", "weekends outdoors", "outdoor fun", "beginners and pros alike"),
    "toys": ("rainy afternoons", "creative play", "family game night", "little explorers"),
}
FEATURES: dict[str, tuple[str, ...]] = {
    "apparel": (
        "Machine washable at 30°C.", "Pre-shrunk and colourfast.", "Relaxed fit that keeps its shape.",
        "Ethically made in a Fair Wear certified factory.", "Tailored fit with a soft hand feel.",
    ),
    "footwear": (
        "Cushioned insole for all-day comfort.", "Grippy rubber outsole.", "Breathable lining keeps feet cool.",
        "Fits true to size.", "Arrives in a recycled shoebox.",
    ),
    "bags": (
        "Zip-top closure and an inner slip pocket.", "Adjustable, detachable strap.", "Water-repellent finish.",
        "Magnetic snap closure.", "Lined with recycled cotton.",
    ),
    "accessories": (
        "Comes in a gift box.", "Hypoallergenic and nickel-free.", "Lightweight for everyday wear.",
        "Two-year guarantee.", "Free engraving on request.",
    ),
    "home": (
        "Easy to assemble; tools included.", "Designed in Scandinavia.", "Wipe clean with a damp cloth.",
        "Made from responsibly sourced materials.", "Free delivery to your room of choice.",
    ),
    "kitchen": (
        "Dishwasher safe.", "Gift-boxed and ready to give.", "Made to last a lifetime.",
        "Food-safe and lead-free.", "Hand wash recommended to keep the finish.",
    ),
    "electronics": (
        "Two-year manufacturer warranty.", "Ships with a USB-C cable.", "Energy-efficient design.",
        "Free firmware updates.", "Bluetooth 5.3 connectivity.",
    ),
    "sports": (
        "Tested by our in-house sports team.", "Durable for indoor and outdoor use.", "Lightweight and well balanced.",
        "Built to last season after season.", "Comes with a carry bag.",
    ),
    "toys": (
        "Meets EN 71 toy safety standards.", "Non-toxic, child-safe paints.", "Encourages imaginative play.",
        "Makes a great gift.", "Batteries not required.",
    ),
}
# fmt: on
T = TypeVar("T")
# Products were listed over the year before this (deterministic per SKU): what "Newest" sorts by.
LISTED_BEFORE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
LISTING_YEAR_SECONDS = 365 * 24 * 3600
SMALL_WORDS = {"a", "an", "and", "by", "for", "in", "of", "on", "the", "with"}


@dataclass(frozen=True)
class ProductSpec:
    """Everything needed to create one demo product and, from ``photo_seed``, its photo."""

    sku: str
    slug: str
    category: str
    title: str
    description: str
    brand: str
    color: str
    pattern: str
    material: str
    price: Decimal
    in_stock: bool
    art_set: str
    photo_seed: int
    extra: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def attributes(self) -> dict[str, str | int]:
        """What ``Product.attributes`` stores: the exact type, art set and material, for evaluation."""
        return {"type": self.slug, "art_set": self.art_set, "material": self.material, "sku": self.sku, **self.extra}

    @property
    def added_at(self) -> dt.datetime:
        """When the product was listed: spread over a year, the same for a SKU on every run."""
        digest = int.from_bytes(hashlib.sha256(self.sku.encode()).digest()[:8], "big")
        return LISTED_BEFORE - dt.timedelta(seconds=digest % LISTING_YEAR_SECONDS)

    @property
    def image_name(self) -> str:
        return f"demo-{self.sku}-{self.slug}-{self.color}.jpg"

    def model_fields(self) -> dict[str, object]:
        """The ``shop.Product`` field values of this spec, image aside: ``Product(**spec.model_fields())``."""
        return {
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "product_type": TYPES_BY_SLUG[self.slug].noun,
            "brand": self.brand,
            "color": self.color,
            "pattern": self.pattern,
            "price": self.price,
            "in_stock": self.in_stock,
            "added_at": self.added_at,
            "attributes": self.attributes,
        }


def photo_jpeg(spec: ProductSpec) -> bytes:
    """The product photo of ``spec`` as JPEG bytes; identical for identical specs."""
    rng = random.Random(spec.photo_seed)
    return to_jpeg(product_photo(render(spec.art_set, spec.slug), spec.color, spec.pattern, rng), rng)


def title_case(text: str) -> str:
    """Capitalize each word's first letter only, so "t-shirt" gives "T-shirt" and "TV" stays "TV"."""
    words = text.split(" ")
    return " ".join(w if (i and w in SMALL_WORDS) or not w else w[0].upper() + w[1:] for i, w in enumerate(words))


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _is_plural(term: str) -> bool:
    return term.endswith("dice") or (term.endswith("s") and not term.endswith("ss"))


def _a(term: str, adjective: str = "") -> str:
    """``term`` with its adjective and the right article: "an elegant tote", but "elegant trainers"."""
    phrase = f"{adjective} {term}" if adjective else term
    if _is_plural(term):
        return phrase
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _cycled(rng: random.Random, items: list[T]) -> Iterator[T]:
    """Items in a fresh random order each round: even spread without a visible period."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def _size(art_type: ArtType, audience: str | None, rng: random.Random) -> tuple[str, str]:
    """A short size label for titles and a sentence for descriptions ("" and "" when sizes do not apply)."""
    if art_type.size is None:
        return "", ""
    kind, low, high = art_type.size
    if kind == "clothing":
        label = "ages 4-12" if audience in ("kids'", "girls'") else "sizes " + rng.choice(("XS-XL", "S-XXL", "XS-L"))
        return label, f"Available in {label}."
    if kind == "shoe":
        first, last = SHOE_SIZES.get(audience or "unisex", SHOE_SIZES["unisex"])
        return f"sizes {first}-{last}", f"EU sizes {first} to {last}; half sizes should size up."
    if kind == "waist":
        first = rng.randrange(low, low + 5, 2)
        return f"waist {first}-{high}", f"Waist sizes {first} to {high}, leg lengths 30, 32 and 34."
    n = rng.randint(low, high)
    if kind == "volume":
        return f"{n} L", f"{n}-litre capacity."
    if kind == "dimensions":
        height, depth = round(n * rng.uniform(0.45, 0.9)), round(n * rng.uniform(0.15, 0.45))
        return f"{n} cm wide", f"Measures {n} x {height} x {depth} cm."
    if kind == "ring":
        return f"size {n}", f"Ring size {n}; other sizes on request."
    if kind == "diameter_mm":
        return f"{n} mm", f"{n} mm case, water resistant to 5 ATM."
    if kind == "diameter":
        return f"Ø {n} cm", f"Diameter {n} cm."
    if kind == "one_size":
        return "one size", "One size with an adjustable back."
    if kind == "length":
        return f"{n} cm", f"{n} cm long."
    if kind == "bed":
        width = rng.choice((140, 160, 180))
        return f"{width} x 200 cm", f"Fits a {width} x 200 cm mattress."
    if kind == "burn":
        return f"{n} h burn time", f"Burns for about {n} hours."
    if kind == "frame":
        label = rng.choice(("10 x 15 cm", "13 x 18 cm", "A4", "30 x 40 cm", "50 x 70 cm"))
        return label, f"Holds a {label} print; wall-mounting hardware included."
    if kind == "height":
        return f"{n} cm", f"Stands {n} cm tall."
    if kind == "capacity":
        ml = round(n, -1)
        label = f"{ml / 1000:g} L" if ml >= 1000 else f"{ml} ml"
        return label, f"Holds {label}."
    if kind == "blade":
        return f"{n} cm blade", f"{n} cm blade, hand-sharpened."
    if kind == "storage":
        gb = rng.choice([g for g in (64, 128, 256, 512) if low <= g <= high])
        return f"{gb} GB", f"{gb} GB of storage."
    if kind == "screen":
        return f'{n}"', f"{n}-inch screen."
    if kind == "megapixels":
        return f"{n} MP", f"{n}-megapixel sensor."
    if kind == "ball":
        return f"size {n}", f"Official size {n}."
    if kind == "ounces":
        oz = rng.choice([o for o in (8, 10, 12, 14, 16) if low <= o <= high])
        return f"{oz} oz", f"{oz} oz weight."
    if kind == "wheel":
        return f'{n}" wheels', f"{n}-inch wheels."
    if kind == "persons":
        return f"{n}-person", f"Sleeps {n}."
    if kind == "age":
        return f"ages {n}+", f"For ages {n} and up."
    if kind == "pieces":
        pieces = rng.choice((300, 500, 1000, 1500))
        return f"{pieces} pieces", f"{pieces} pieces."
    if kind == "pieces_small":
        return f"{n}-piece set", f"A set of {n} pieces."
    raise ValueError(f"Unknown size kind {kind!r} for {art_type.slug}.")


def _price(art_type: ArtType, brand: Brand, material: str, rng: random.Random) -> Decimal:
    """A shop-like price: log-spread over the type's range, scaled by brand and material, with .99-style endings."""
    low, high = art_type.price
    value = low * (high / low) ** (rng.random() ** 1.3) * brand.tier * MATERIAL_PRICE.get(material, 1.0)
    value = min(max(value, low * 0.8), high * 1.3)
    if value < 30:
        return Decimal(f"{int(value)}.{rng.choice(('99', '95', '49'))}")
    if value < 300:
        return Decimal(int(round(value / 5) * 5)) - Decimal(rng.choice(("0.01", "0.05", "0.00")))
    return Decimal(int(round(value / 10) * 10)) - Decimal(rng.choice(("1.00", "0.01", "0.00")))


def _title(rng: random.Random, *, color: str, type_term: str, pattern: str, material: str, brand: str,
           line: str, audience: str | None, size: str) -> str:  # fmt: skip
    """One of several title shapes; all name the type (or a synonym) and the color (or a synonym)."""
    noun = f"{pattern} {type_term}" if pattern else type_term
    who = f"{audience} " if audience else ""
    shapes = [
        lambda: title_case(f"{color} {material} {noun} by {brand}"),
        lambda: title_case(f"{brand} {line} {noun}") + f", {title_case(color)}",
        lambda: _sentence(f"{who}{noun} in {color}, {material}" + (f", {size}" if size else "")),
        lambda: f"{brand} " + title_case(f"{who}{color} {noun}"),
        lambda: title_case(f"{line} {material} {noun}") + f" - {title_case(color)}",
        lambda: title_case(f"{who}{noun} in {color}") + (f" ({size})" if size else ""),
        lambda: title_case(f"{color} {noun}") + f" | {brand} {line}",
    ]
    return rng.choice(shapes)()


def _pick_term(terms: tuple[str, ...], rng: random.Random, canonical_share: float) -> str:
    return terms[0] if rng.random() < canonical_share else rng.choice(terms[1:])


def _product(index: int, seed: int, art_type: ArtType, color: str, art_set: str) -> ProductSpec:
    rng = random.Random(f"catalog/{seed}/{index}")
    category = art_type.category
    brand = rng.choice([b for b in BRANDS if category in b.categories])
    material = rng.choice(MATERIALS[art_type.materials])
    pattern = "solid"
    if art_type.materials in PRINTABLE and rng.random() < PATTERN_SHARE:
        pattern = rng.choice(("striped", "dotted", "checked"))
    audiences = AUDIENCE_BY_TYPE.get(art_type.slug, AUDIENCES) if category in ("apparel", "footwear") else ()
    audience = rng.choice(audiences) if audiences else None
    size, size_sentence = _size(art_type, audience, rng)
    line = rng.choice(LINES)

    type_term = _pick_term(art_type.terms, rng, 0.5)
    color_term = _pick_term(COLORS[color].terms, rng, 0.55)
    pattern_term = rng.choice(PATTERN_TERMS[pattern]) if pattern != "solid" else ""
    title = _title(rng, color=color_term, type_term=type_term, pattern=pattern_term, material=material,
                   brand=brand.name, line=line, audience=audience, size=size)  # fmt: skip

    other_terms = [t for t in art_type.terms if t != type_term]
    other_colors = [c for c in COLORS[color].terms if c != color_term]
    described, described_color = rng.choice(other_terms), rng.choice(other_colors)
    adjective = rng.choice(ADJECTIVES)
    opening = rng.choice(
        (
            f"{_sentence(_a(described, adjective))} in {described_color}, made from {material}.",
            f"From {brand.name}: {_a(described, adjective)} in {described_color} {material}.",
            f"Meet the {line} {described}: {adjective}, {material} and finished in {described_color}.",
        )
    )
    sentences = [opening]
    if pattern != "solid":
        sentences.append(rng.choice(("Printed with {}.", "Features {}.")).format(rng.choice(PATTERN_PHRASES[pattern])))
    sentences.append(f"{_sentence(_a(type_term))} for {rng.choice(USES[category])}.")
    if size_sentence:
        sentences.append(size_sentence)
    sentences.extend(rng.sample(FEATURES[category], 2))
    if rng.random() < 0.6:
        sentences.append(f"Colour: {title_case(color)}.")

    extra = {"size": size} if size else {}
    if audience:
        extra["audience"] = audience
    digest = hashlib.sha256(f"photo/{seed}/{index}".encode()).digest()
    return ProductSpec(
        sku=f"{seed}-{index + 1:05d}",
        slug=art_type.slug,
        category=category,
        title=title,
        description=" ".join(sentences),
        brand=brand.name,
        color=color,
        pattern=pattern,
        material=material,
        price=_price(art_type, brand, material, rng),
        in_stock=rng.random() < 0.85,
        art_set=art_set,
        photo_seed=int.from_bytes(digest[:8], "big"),
        extra=extra,
    )


def generate(count: int, seed: int = 1) -> list[ProductSpec]:
    """``count`` product specs, a pure function of ``(count, seed)``.

    Types and colors come round in shuffled cycles, so every type appears once per ``len(TYPES)``
    products and every color once per ``len(COLORS)``; each type alternates between the catalog art sets.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(f"catalog/{seed}")
    types = _cycled(random.Random(rng.getrandbits(64)), list(TYPES))
    colors = _cycled(random.Random(rng.getrandbits(64)), list(COLORS))
    seen: dict[str, int] = {}
    specs = []
    for index in range(count):
        art_type, color = next(types), next(colors)
        occurrence = seen[art_type.slug] = seen.get(art_type.slug, -1) + 1
        art_set = CATALOG_SETS[(occurrence + TYPES.index(art_type) + seed) % len(CATALOG_SETS)]
        specs.append(_product(index, seed, art_type, color, art_set))
    return specs
