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
  in crimson"); the target is the type in the named color;
- ``typo``: a plain "color type" query (a solid target) with one edit of one catalog word of 5 or more
  letters: two adjacent letters swapped, a letter dropped or a letter doubled ("red snaekers"); the typed
  word is no catalog word (no title or description has it, folded or stemmed). The line also carries the
  query spelled right (``"spelled": "red sneakers"``), which ``evaluate`` searches as well, and the edit
  (``"typo": {"word", "typed", "edit"}``); grades as for plain;
- ``price``: a product-type query with a price phrase, "sneakers under 50", "backpack between 20 and
  40", "mug below $15", "tent over 100" (upper bounds, lower bounds and ranges in several wordings, at
  round prices). Relevant (grade 1) are exactly the products of the type inside the bound, bounds
  included; every product outside it is irrelevant, whatever its type. The bound keeps at least
  ``min(10, n // 2)`` of the type's n products inside and at least ``max(2, n // 5)`` outside, and no
  product of the type costs exactly the bound (is a 50.00 product "under 50"?). The ``target`` gives the
  type and the bound (``{"type": "sneakers", "price": {"lte": 50}}``).

Each kind draws from its own random stream, and the kinds are written in the order of ``KINDS``: a
kind's count, or a kind added at the end, leaves the other kinds' lines (and photo files) as they were.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
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
KINDS = ("plain", "synonym", "paraphrase", "photo", "photo+text", "typo", "price")
DEFAULT_COUNTS = {"plain": 100, "synonym": 80, "paraphrase": 60, "photo": 60, "photo+text": 40, "typo": 60, "price": 60}
PATTERNED_SHARE = 0.3  # of the targets of plain, synonym, paraphrase and photo; the catalog has about 10% patterned

TYPO_EDITS = ("swap", "drop", "double")  # two adjacent letters swapped, a letter dropped, a letter doubled
TYPO_MIN_LENGTH = 5  # only words this long get a typo (the corrector leaves words under 4 letters alone)

# Prices a shopper types: the bounds of price queries are among these.
# fmt: off
ROUND_PRICES = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 75, 80, 90, 100, 120, 125, 150, 175, 200, 250, 300,
                350, 400, 450, 500, 600, 700, 750, 800, 900, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000)
PRICE_PHRASES: dict[str, tuple[str, ...]] = {
    "lte": ("under {}", "under ${}", "below {}", "below ${}", "less than {} dollars", "up to ${}", "{} or less",
            "cheaper than {}", "for under ${}", "no more than {}"),
    "gte": ("over {}", "over ${}", "above {}", "above ${}", "more than ${}", "at least {} dollars", "from ${}",
            "{} or more", "{} and up"),
    "range": ("between {} and {}", "between ${} and ${}", "{}-{}", "${}-${}", "{} to {} dollars", "from {} to {}",
              "{}-{} dollars"),
}
# fmt: on


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


def catalog_prices() -> dict[str, Decimal]:
    """id -> price of every demo product in the database (the price queries' bounds are checked on them)."""
    from demo_project.shop.models import Product

    return {str(pk): price for pk, price in Product.objects.values_list("pk", "price")}


def catalog_words() -> set[str]:
    """Every word of the demo products' indexed text (titles and descriptions), folded and stemmed: a
    typo query's typed word is none of them."""
    from demo_project.shop.models import Product

    return title_words(text for row in Product.objects.values_list("title", "description") for text in row)


def typo_edits(word: str) -> list[tuple[str, str]]:
    """``(edit, typed)`` for every distinct word one edit of ``TYPO_EDITS`` makes of ``word``, in a fixed
    order (a swap of two equal letters changes nothing and is left out)."""
    edits = [("swap", word[:i] + word[i + 1] + word[i] + word[i + 2 :]) for i in range(len(word) - 1)]
    edits += [("drop", word[:i] + word[i + 1 :]) for i in range(len(word))]
    edits += [("double", word[: i + 1] + word[i:]) for i in range(len(word))]
    seen: dict[str, str] = {}
    for edit, typed in edits:
        if typed != word:
            seen.setdefault(typed, edit)
    return [(edit, typed) for typed, edit in seen.items()]


def _typo(rng: random.Random, query: str, words: set[str]) -> dict | None:
    """One edit of one word of ``query`` (``TYPO_MIN_LENGTH`` letters or more) that is no word of ``words``:
    ``{"q", "word", "typed", "edit"}``, or None if there is none. The word first, then the kind of edit,
    then where."""
    parts = query.split(" ")
    positions = [i for i, w in enumerate(parts) if len(w) >= TYPO_MIN_LENGTH and w.isalpha()]
    rng.shuffle(positions)
    for i in positions:
        options = [(edit, typed) for edit, typed in typo_edits(parts[i]) if not shared_words(typed, words)]
        kinds = [kind for kind in TYPO_EDITS if any(edit == kind for edit, _ in options)]
        if not kinds:
            continue
        kind = rng.choice(kinds)
        typed = rng.choice([typed for edit, typed in options if edit == kind])
        q = " ".join([*parts[:i], typed, *parts[i + 1 :]])
        return {"q": q, "word": parts[i], "typed": typed, "edit": kind}
    return None


def in_bound(price: Decimal, bound: Mapping[str, int]) -> bool:
    """Whether ``price`` is inside ``bound`` (``{"gte": a, "lte": b}``, either side optional), bounds included."""
    return ("gte" not in bound or price >= bound["gte"]) and ("lte" not in bound or price <= bound["lte"])


def price_bounds(prices: Sequence[Decimal]) -> dict[str, list[dict[str, int]]]:
    """The bounds a price query on a type with these product prices may use, per shape ("lte", "gte",
    "range"): round prices (``ROUND_PRICES``) that keep at least ``min(10, n // 2)`` products inside and
    ``max(2, n // 5)`` outside (a range: at least one on each side), and that no product costs exactly."""
    n = len(prices)
    need, most = min(10, n // 2), n - max(2, n // 5)
    exact = set(prices)
    values = [v for v in ROUND_PRICES if Decimal(v) not in exact]

    def fits(bound: dict[str, int]) -> bool:
        return need <= sum(in_bound(p, bound) for p in prices) <= most

    ranges = [
        {"gte": a, "lte": b}
        for i, a in enumerate(values)
        for b in values[i + 1 :]
        if min(prices) < a and max(prices) > b
    ]
    return {
        "lte": [b for b in ({"lte": v} for v in values) if fits(b)],
        "gte": [b for b in ({"gte": v} for v in values) if fits(b)],
        "range": [b for b in ranges if fits(b)],
    }


def _sample(rng: random.Random, targets: list[Target], count: int, patterned_share: float) -> list[Target]:
    """``count`` distinct targets, about ``patterned_share`` of them patterned (as far as the catalog allows)."""
    patterned = [t for t in targets if t.pattern != "solid"]
    solid = [t for t in targets if t.pattern == "solid"]
    n_patterned = min(len(patterned), round(count * patterned_share))
    chosen = rng.sample(patterned, n_patterned) + rng.sample(solid, min(len(solid), count - n_patterned))
    rng.shuffle(chosen)
    return chosen


def build_queries(
    products: Sequence[tuple[str, Target, str]],
    seed: int,
    counts: dict[str, int] | None = None,
    *,
    prices: Mapping[str, Decimal] | None = None,
    words: set[str] | None = None,
) -> list[dict]:
    """The judged queries for ``products`` (no files written): one dict per query, photos as specs.

    A photo query carries ``"photo": {"type", "color", "pattern", "seed"}`` instead of an image path;
    ``generate_judgments`` renders it. ``prices`` (id -> price) is what price queries are bounded on (no
    price queries without it); ``words`` are the catalog's words a typo must not make (default: the
    titles' words; ``generate_judgments`` passes titles and descriptions, ``catalog_words()``).
    Deterministic for ``(products, seed, counts, prices, words)``.
    """
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    unknown = set(counts) - set(KINDS)
    if unknown:
        raise ValueError(f"Unknown query kinds {sorted(unknown)}; kinds are {', '.join(KINDS)}.")
    present = sorted({target for _, target, _ in products})
    avoid = words  # what a typo must not be, if given; ``words`` is the titles' words from here on
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

    typo = rng("typo")
    typo_words = avoid if avoid is not None else words
    typable = [
        t
        for t in solid
        if any(
            len(w) >= TYPO_MIN_LENGTH and w.isalpha()
            for term in (*COLORS[t.color].terms, *TYPES_BY_SLUG[t.type].terms)
            for w in term.split(" ")
        )
    ]
    for target in _sample(typo, typable, counts["typo"], 0.0):
        for _ in range(100):  # terms until one has a word to misspell ("red mug" has none)
            spelled = f"{typo.choice(COLORS[target.color].terms)} {typo.choice(TYPES_BY_SLUG[target.type].terms)}"
            made = _typo(typo, spelled, typo_words)
            if made:
                break
        else:
            continue
        add("typo", target, made.pop("q"))
        queries[-1] = {"q": queries[-1]["q"], "spelled": spelled, "typo": made, **queries[-1]}

    if prices is not None:
        by_type: dict[str, list[tuple[str, Decimal]]] = {}
        for pk, product, _ in products:
            by_type.setdefault(product.type, []).append((pk, prices[pk]))
        bounds = {slug: price_bounds([p for _, p in own]) for slug, own in sorted(by_type.items())}
        boundable = [slug for slug, shapes in bounds.items() if any(shapes.values())]
        price = rng("price")
        for slug in price.sample(boundable, min(len(boundable), counts["price"])):
            shape = price.choice([s for s in ("lte", "gte", "range") if bounds[slug][s]])
            bound = price.choice(bounds[slug][shape])
            phrase = price.choice(PRICE_PHRASES[shape])
            phrase = phrase.format(bound["gte"], bound["lte"]) if shape == "range" else phrase.format(bound[shape])
            relevant = {pk: 1 for pk, p in by_type[slug] if in_bound(p, bound)}
            q = f"{price.choice(TYPES_BY_SLUG[slug].terms)} {phrase}"
            queries.append({"q": q, "relevant": relevant, "tags": ["price"], "target": {"type": slug, "price": bound}})
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
    queries = build_queries(products, seed, counts, prices=catalog_prices(), words=catalog_words())
    for number, query in enumerate(queries, start=1):
        photo = query.pop("photo", None)
        if photo:
            path = photo_dir / f"{number:04d}-{photo['type']}-{photo['color'] or 'own'}-{photo['pattern']}.jpg"
            path.write_bytes(customer_photo(photo["type"], photo["seed"], photo["color"], photo["pattern"]))
            query = {"image": path.relative_to(out_dir).as_posix(), **query}
        lines.append(json.dumps(query))
    output = out_dir / f"{name}.jsonl"
    output.write_text("\n".join(lines) + "\n")
    return output
