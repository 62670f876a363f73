"""Graded relevance judgments for the demo shop, generated from the products' own attributes.

The demo catalog knows every product's exact type, color and pattern (``Product.attributes["type"]``,
``Product.color``, ``Product.pattern``), so judged queries can be written without a human in the loop.
``generate_judgments(out_dir, seed)`` writes a JSONL file for ``manage.py catalog_search evaluate`` (and
the customer photos it refers to) from the products in the database.

Grades (what "category" means here): the issue grades "category+color+pattern = 3, category+color = 2,
category = 1". For the demo, *category is the product type* (one of the 81 types such as handbag or
sneakers, ``attributes["type"]``), not one of the 9 shop categories: someone searching "red tote" wants a
tote; a blue tote is the right product in the wrong color (1), a red backpack is not what they asked for
(0). So, against a query's target (type, color, pattern):

- 3: same type, color and pattern (a query that names no pattern asks for a plain, "solid" product);
- 2: same type and color, another pattern;
- 1: same type, another color;
- 0 (not listed): any other type.

Query kinds (the ``tags`` of each line):

- ``plain``: the words a shop uses, "crimson pinstripe tote" (color and type terms from the catalog's own
  word lists, canonical or synonym, so some of them are in titles and some only in other products' titles);
- ``synonym``: the vocabulary mismatch of the issue's examples ("crimson tote", "trainers"): catalog words
  that appear in no title of the products asked for (same type and color), so keywords can only find
  them through other products' titles or descriptions;
- ``paraphrase``: words that appear in no product title at all, "ruby pocketbook", "plaid cravat"; checked
  against the titles in the database (``ParaphraseError`` otherwise). Keywords cannot find these, and
  neither saw the demo encoder's training captions: a test of how far its frozen MiniLM text tower
  generalizes;
- ``photo``: a "customer photo" from the held-out OpenMoji art set (never in the catalog), recolored and
  patterned like the target, written as a JPEG next to the JSONL;
- ``photo+text``: a customer photo of the type in another color, refined by a color word ("this, but
  in crimson"); the target is the type in the named color.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from demo_project.shop.artwork import TYPES_BY_SLUG
from demo_project.shop.catalog import PATTERN_TERMS
from demo_project.shop.photos import COLORS, customer_photo

# Words no demo title uses (catalog.py's word lists never produce them), chosen by dictionary meaning,
# not by what the encoder happens to get right. Types without a clean one-word paraphrase are left out.
# fmt: off
TYPE_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "dress": ("gown",), "coat": ("anorak", "windbreaker"), "shorts": ("bermudas",), "swimsuit": ("swimwear",),
    "socks": ("hosiery",), "sneakers": ("runners", "athletic footwear"), "oxford-shoes": ("wingtips",),
    "hiking-boots": ("hikers",), "flip-flops": ("jandals",), "handbag": ("pocketbook",), "coin-purse": ("billfold",),
    "backpack": ("knapsack",), "suitcase": ("baggage", "valise"), "basket-bag": ("hamper",),
    "shopping-bag": ("grocery sack",), "glasses": ("specs",), "watch": ("chronograph",), "necktie": ("cravat",),
    "sun-hat": ("panama",), "scarf": ("pashmina", "stole"), "sofa": ("chesterfield", "divan"),
    "chair": ("armchair",), "bed": ("four-poster",), "candle": ("taper",), "mug": ("teacup",),
    "wine-glass": ("chalice",), "jar": ("canister",), "cooking-pot": ("saucepan",), "laptop": ("chromebook",),
    "desktop-computer": ("workstation",), "camera": ("dslr",), "headphones": ("earphones",),
    "radio": ("transistor",), "television": ("telly",), "game-controller": ("joystick",), "bicycle": ("cycle",),
    "teddy-bear": ("plushie",), "nesting-dolls": ("babushkas",), "toy-rocket": ("spaceship",),
}
COLOR_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "red": ("ruby", "vermilion"), "orange": ("amber", "apricot"), "yellow": ("canary", "saffron"),
    "green": ("jade", "moss"), "teal": ("aqua", "cyan"), "blue": ("sapphire", "cerulean"), "navy": ("indigo",),
    "purple": ("amethyst", "grape"), "pink": ("fuchsia", "flamingo"), "brown": ("mocha", "mahogany"),
    "black": ("raven", "noir"), "white": ("ivory", "alabaster"), "grey": ("pewter", "smoke"),
    "beige": ("khaki", "taupe"),
}
PATTERN_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "striped": ("stripy",), "dotted": ("spotty", "speckled"), "checked": ("plaid", "tartan"),
}
# fmt: on
KINDS = ("plain", "synonym", "paraphrase", "photo", "photo+text")
DEFAULT_COUNTS = {"plain": 100, "synonym": 80, "paraphrase": 60, "photo": 60, "photo+text": 40}
PATTERNED_SHARE = 0.3  # of the targets of every kind but photo+text; the catalog has about 10% patterned


class ParaphraseError(ValueError):
    """A paraphrase query shares a word with a product title."""


@dataclass(frozen=True, order=True)
class Target:
    """What a query asks for; also what a product is."""

    type: str
    color: str
    pattern: str = "solid"


def grade(product: Target, target: Target) -> int:
    """3 same type, color and pattern; 2 same type and color; 1 same type; 0 otherwise."""
    if product.type != target.type:
        return 0
    if product.color != target.color:
        return 1
    return 3 if product.pattern == target.pattern else 2


def catalog_products() -> list[tuple[str, Target, str]]:
    """``(id, Target, title)`` of every demo product in the database, by id."""
    from demo_project.shop.models import Product

    rows = Product.objects.order_by("pk").values_list("pk", "attributes", "color", "pattern", "title")
    return [
        (str(pk), Target(attributes["type"], color, pattern or "solid"), title)
        for pk, attributes, color, pattern, title in rows
        if isinstance(attributes, dict) and attributes.get("type") in TYPES_BY_SLUG
    ]


def title_words(titles: Iterable[str]) -> set[str]:
    """Every word of the titles, as typed (folded) and as indexed (stemmed): what "shares a word" means."""
    from catalog_search.analysis import get_analyzer

    analyzer = get_analyzer()
    words: set[str] = set()
    for title in titles:
        words.update(analyzer.tokens(title))
        words.update(analyzer.terms(title))
    return words


def shared_words(query: str, words: set[str]) -> set[str]:
    """Words of ``query`` (folded or stemmed) that are also in ``words``."""
    from catalog_search.analysis import get_analyzer

    analyzer = get_analyzer()
    return (set(analyzer.tokens(query)) | set(analyzer.terms(query))) & words


def _fresh(terms: Sequence[str], words: set[str]) -> list[str]:
    return [t for t in terms if not shared_words(t, words)]


def _sample(rng: random.Random, targets: list[Target], count: int, patterned_share: float) -> list[Target]:
    """``count`` distinct targets, about ``patterned_share`` of them patterned (as far as the catalog allows)."""
    patterned = [t for t in targets if t.pattern != "solid"]
    solid = [t for t in targets if t.pattern == "solid"]
    n_patterned = min(len(patterned), round(count * patterned_share))
    chosen = rng.sample(patterned, n_patterned) + rng.sample(solid, min(len(solid), count - n_patterned))
    rng.shuffle(chosen)
    return chosen


def build_queries(
    products: Sequence[tuple[str, Target, str]], seed: int, counts: dict[str, int] | None = None
) -> list[dict]:
    """The judged queries for ``products`` (no files written): one dict per query, photos as specs.

    A photo query carries ``"photo": {"type", "color", "pattern", "seed"}`` instead of an image path;
    ``generate_judgments`` renders it. Deterministic for ``(products, seed, counts)``.
    """
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    unknown = set(counts) - set(KINDS)
    if unknown:
        raise ValueError(f"Unknown query kinds {sorted(unknown)}; kinds are {', '.join(KINDS)}.")
    present = sorted({target for _, target, _ in products})
    words = title_words(title for _, _, title in products)

    def rng(kind: str) -> random.Random:  # one stream per kind: one kind's count leaves the others alone
        return random.Random(f"judgments/{seed}/{kind}")

    queries: list[dict] = []

    def add(kind: str, target: Target, q: str | None = None, photo: dict | None = None) -> None:
        relevant = {pk: g for pk, product, _ in products if (g := grade(product, target))}
        row: dict = {"q": q} if q else {}
        if photo:
            row["photo"] = photo
        queries.append({**row, "relevant": relevant, "tags": [kind], "target": asdict(target)})

    plain = rng("plain")
    for target in _sample(plain, present, counts["plain"], PATTERNED_SHARE):
        pattern = [plain.choice(PATTERN_TERMS[target.pattern])] if target.pattern != "solid" else []
        color = plain.choice(COLORS[target.color].terms)
        add("plain", target, " ".join([color, *pattern, plain.choice(TYPES_BY_SLUG[target.type].terms)]))

    own_titles: dict[tuple[str, str], list[str]] = {}
    for _, product, title in products:
        own_titles.setdefault((product.type, product.color), []).append(title)
    synonyms: dict[Target, list[list[str]]] = {}
    for target in present:
        own = title_words(own_titles[(target.type, target.color)])
        choices = [
            _fresh(COLORS[target.color].terms, own),
            *([_fresh(PATTERN_TERMS[target.pattern], own)] if target.pattern != "solid" else []),
            _fresh(TYPES_BY_SLUG[target.type].terms, own),
        ]
        if all(choices):
            synonyms[target] = choices
    synonym = rng("synonym")
    for target in _sample(synonym, sorted(synonyms), counts["synonym"], PATTERNED_SHARE):
        add("synonym", target, " ".join(synonym.choice(terms) for terms in synonyms[target]))

    type_words = {slug: _fresh(terms, words) for slug, terms in TYPE_PARAPHRASES.items()}
    color_words = {name: _fresh(terms, words) for name, terms in COLOR_PARAPHRASES.items()}
    pattern_words = {name: _fresh(terms, words) for name, terms in PATTERN_PARAPHRASES.items()}
    sayable = [
        t
        for t in present
        if type_words.get(t.type) and color_words[t.color] and (t.pattern == "solid" or pattern_words[t.pattern])
    ]
    para = rng("paraphrase")
    for target in _sample(para, sayable, counts["paraphrase"], PATTERNED_SHARE):
        pattern = [para.choice(pattern_words[target.pattern])] if target.pattern != "solid" else []
        q = " ".join([para.choice(color_words[target.color]), *pattern, para.choice(type_words[target.type])])
        if shared_words(q, words):  # unreachable by construction; the promise is worth a check
            raise ParaphraseError(f"paraphrase {q!r} shares {sorted(shared_words(q, words))} with a title")
        add("paraphrase", target, q)

    for n, target in enumerate(_sample(rng("photo"), present, counts["photo"], PATTERNED_SHARE)):
        add("photo", target, photo={**asdict(target), "seed": seed * 100_000 + n})

    solid = [t for t in present if t.pattern == "solid"]
    refine = rng("photo+text")
    for n, target in enumerate(_sample(refine, solid, counts["photo+text"], 0.0)):
        # The photo shows the type in another color (or the artist's own colors); the text names the color.
        shown = refine.choice([None, *sorted(c for c in COLORS if c != target.color)])
        photo = {"type": target.type, "color": shown, "pattern": "solid", "seed": seed * 100_000 + 50_000 + n}
        add("photo+text", target, refine.choice(COLORS[target.color].terms), photo)
    return queries


def generate_judgments(
    out_dir: Path | str, seed: int = 1, counts: dict[str, int] | None = None, name: str | None = None
) -> Path:
    """Write ``<name>.jsonl`` and its customer photos (``<name>-photos/*.jpg``) into ``out_dir``; return the file.

    Reads the demo products from the database (Django must be set up). ``name`` defaults to
    ``judgments-seed<seed>``. Image paths in the file are relative to it, as ``load_judgments`` expects,
    so the folder can be moved. The same database, seed and counts give byte-identical files.
    """
    products = catalog_products()
    if not products:
        raise ValueError("The shop has no demo products; run `python manage.py seed_demo_catalog` first.")
    out_dir = Path(out_dir)
    name = name or f"judgments-seed{seed}"
    photo_dir = out_dir / f"{name}-photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, query in enumerate(build_queries(products, seed, counts), start=1):
        photo = query.pop("photo", None)
        if photo:
            path = photo_dir / f"{number:04d}-{photo['type']}-{photo['color'] or 'own'}-{photo['pattern']}.jpg"
            path.write_bytes(customer_photo(photo["type"], photo["seed"], photo["color"], photo["pattern"]))
            query = {"image": path.relative_to(out_dir).as_posix(), **query}
        lines.append(json.dumps(query))
    output = out_dir / f"{name}.jsonl"
    output.write_text("\n".join(lines) + "\n")
    return output
