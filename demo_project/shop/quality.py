"""Quality of a demo encoder on held-out data, computed in memory (no database).

The held-out catalog is generated with another seed than the shop's, so no photo was seen in training.
Four measurements, each with the issue's target:

- type+color text -> product: query "<color> <type>", Recall@10 >= 0.85, where recall counts the
  relevant products found in the top 10 over min(relevant, 10) (a query cannot find more than 10);
- paraphrased type+color: a synonym for both ("crimson tote"), Precision@10 >= 0.6 (same type and color).
  Precision needs at least 10 relevant products per query, so 40 (type, color) pairs get 12 extra
  held-out products each (new photos), mixed into the held-out catalog as the rest's distractors;
- held-out art style ("customer photos" from OpenMoji, never in the catalog or training): photo ->
  catalog photos, the type appears in the top 5 for >= 50% of pictures;
- a catalog photo mildly perturbed (crop, rotation, JPEG, brightness): the rank-1 result has the same
  type and color for >= 90%, and the exact product is in the top 3 for >= 90%.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from demo_project.shop.artwork import TYPES
from demo_project.shop.catalog import ProductSpec, generate, photo_jpeg
from demo_project.shop.photos import COLORS, customer_photo

TARGETS = {
    "text_recall_at_10": 0.85,
    "paraphrase_precision_at_10": 0.6,
    "heldout_style_type_in_top5": 0.5,
    "perturbed_type_color_at_1": 0.9,
    "perturbed_exact_in_top3": 0.9,
}


def _decode(jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(jpeg)).convert("RGB")


def perturb(image: Image.Image, rng: random.Random) -> Image.Image:
    """A mild re-shoot: crop up to 10% per side, rotate up to 10 degrees, brightness +-15%, JPEG 60-90."""
    width, height = image.size
    box = (
        rng.uniform(0, 0.1) * width,
        rng.uniform(0, 0.1) * height,
        width - rng.uniform(0, 0.1) * width,
        height - rng.uniform(0, 0.1) * height,
    )
    image = image.crop(tuple(round(v) for v in box))
    image = image.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BICUBIC, fillcolor=image.getpixel((0, 0)))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=rng.randint(60, 90))
    return _decode(buffer.getvalue())


def _rank(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :k]


def evaluate(encoder, count: int = 1000, seed: int = 2, paraphrases_per_pair: int = 3) -> dict[str, float]:
    """All four measurements for ``encoder`` (a catalog_search.encoding.encoders.Encoder) on a held-out catalog."""
    rng = random.Random(f"quality/{seed}")
    specs = generate(count, seed)
    dense_pairs = rng.sample(sorted({(s.slug, s.color) for s in specs}), 40)
    for n, (slug, color) in enumerate(dense_pairs):
        for m in range(12):  # same kind of product, new photo: another art set, pattern and composition
            base = specs[(n * 12 + m) % count]
            specs.append(
                replace(
                    base,
                    slug=slug,
                    color=color,
                    art_set=("noto", "twemoji")[m % 2],
                    photo_seed=rng.getrandbits(63),
                    sku=f"Q{n}-{m}",
                )
            )
    photos = [_decode(photo_jpeg(spec)) for spec in specs]
    items = encoder.encode_images(photos)
    key = [(s.slug, s.color) for s in specs]
    pairs = sorted(set(key))
    types = {t.slug: t for t in TYPES}

    queries = [f"{color} {types[slug].noun}" for slug, color in pairs]
    top = _rank(encoder.encode_texts(queries), items, 10)
    recall = [sum(key[j] == pair for j in row) / min(10, key.count(pair)) for pair, row in zip(pairs, top, strict=True)]

    para_pairs, para_queries = [], []
    for slug, color in dense_pairs:
        for _ in range(paraphrases_per_pair):
            synonyms = types[slug].synonyms or (types[slug].noun,)
            para_pairs.append((slug, color))
            para_queries.append(f"{rng.choice(COLORS[color].synonyms)} {rng.choice(synonyms)}")
    top = _rank(encoder.encode_texts(para_queries), items, 10)
    precision = [np.mean([key[j] == pair for j in row]) for pair, row in zip(para_pairs, top, strict=True)]

    # Three customer photos per type: the artist's own colors, and two recolored (own random stream, so
    # the sample does not depend on how many paraphrases were drawn above).
    colors = random.Random(f"customer-colors/{seed}")
    customer = [(t.slug, customer_photo(t.slug, seed=i)) for i, t in enumerate(TYPES)]
    customer += [
        (t.slug, customer_photo(t.slug, seed=100 * round_ + i, color=colors.choice(list(COLORS))))
        for round_ in (1, 2)
        for i, t in enumerate(TYPES)
    ]
    base = items[:count]  # the uniform held-out catalog, without the dense paraphrase pairs
    top = _rank(encoder.encode_images([_decode(j) for _, j in customer]), base, 5)
    style = [any(specs[j].slug == slug for j in row) for (slug, _), row in zip(customer, top, strict=True)]

    chosen = rng.sample(range(count), min(300, count))
    top = _rank(encoder.encode_images([perturb(photos[i], rng) for i in chosen]), base, 3)
    same_at_1 = [key[row[0]] == key[i] for i, row in zip(chosen, top, strict=True)]
    exact_top3 = [i in row for i, row in zip(chosen, top, strict=True)]

    return {
        "text_recall_at_10": round(float(np.mean(recall)), 4),
        "paraphrase_precision_at_10": round(float(np.mean(precision)), 4),
        "heldout_style_type_in_top5": round(float(np.mean(style)), 4),
        "perturbed_type_color_at_1": round(float(np.mean(same_at_1)), 4),
        "perturbed_exact_in_top3": round(float(np.mean(exact_top3)), 4),
        "queries": len(pairs),
        "paraphrases": len(para_queries),
        "customer_photos": len(customer),
        "perturbed_photos": len(chosen),
        "catalog": len(specs),
        "seed": seed,
    }


def report(checkpoint: Path | str, count: int = 1000, seed: int = 2) -> dict[str, str]:
    """The ``CATALOG_SEARCH['TRAIN_EVALUATION']`` hook: held-out quality against the targets."""
    from catalog_search.encoding.encoders import Encoder

    metrics = evaluate(Encoder(str(checkpoint)), count, seed)
    return {
        f"held-out {name}": f"{metrics[name]:.3f} (target >= {target})"
        + ("" if metrics[name] >= target else "  MISSED")
        for name, target in TARGETS.items()
    }


def missing_targets(metrics: dict[str, float], targets: dict[str, float] = TARGETS) -> list[str]:
    return [f"{name} {metrics[name]} < {target}" for name, target in targets.items() if metrics[name] < target]


__all__: Sequence[str] = ("TARGETS", "evaluate", "missing_targets", "perturb", "report", "ProductSpec")
