"""The demo judgments generator on a small seeded catalog: grades, paraphrases, photos, determinism."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from django.core.management import call_command
from PIL import Image

from catalog_search.analysis import get_analyzer
from catalog_search.offline.evaluation import load_judgments
from demo_project.shop.catalog import generate
from demo_project.shop.judgments import (
    KINDS,
    ParaphraseError,
    Target,
    build_queries,
    catalog_products,
    generate_judgments,
    grade,
    shared_words,
    title_words,
)
from demo_project.shop.models import Product

COUNTS = {"plain": 12, "synonym": 8, "paraphrase": 10, "photo": 4, "photo+text": 3}


@pytest.fixture
def catalog(db):
    """The demo catalog's rows without their photos (the generator reads attributes and titles only)."""
    fields = ("title", "description", "category", "brand", "color", "pattern", "price", "in_stock", "attributes")
    Product.objects.bulk_create(Product(**{f: getattr(s, f) for f in fields}) for s in generate(160, 5))
    return catalog_products()


def test_grade_follows_type_color_and_pattern():
    target = Target("handbag", "red", "striped")
    assert grade(Target("handbag", "red", "striped"), target) == 3
    assert grade(Target("handbag", "red", "solid"), target) == 2
    assert grade(Target("handbag", "blue", "striped"), target) == 1
    assert grade(Target("backpack", "red", "striped"), target) == 0  # same shop category (bags), other type


def test_generated_grades_match_the_database(catalog, tmp_path):
    path = generate_judgments(tmp_path, seed=3, counts=COUNTS)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert Counter(row["tags"][0] for row in rows) == {kind: COUNTS[kind] for kind in KINDS}
    products = {str(p.pk): p for p in Product.objects.all()}
    for row in rows:
        target = row["target"]
        for pk, product in products.items():
            if product.attributes["type"] != target["type"]:
                expected = 0
            elif product.color != target["color"]:
                expected = 1
            else:
                expected = 3 if product.pattern == target["pattern"] else 2
            assert row["relevant"].get(pk, 0) == expected, (row, product.title)
        assert 3 in row["relevant"].values(), "every target exists in the catalog"


def test_paraphrases_share_no_word_with_any_title(catalog):
    queries = [q for q in build_queries(catalog, seed=3, counts=COUNTS) if q["tags"] == ["paraphrase"]]
    assert len(queries) == COUNTS["paraphrase"]
    analyzer = get_analyzer()
    typed = {w for _, _, title in catalog for w in analyzer.tokens(title)}
    stemmed = {w for _, _, title in catalog for w in analyzer.terms(title)}
    for query in queries:
        assert not set(analyzer.tokens(query["q"])) & typed, query["q"]
        assert not set(analyzer.terms(query["q"])) & stemmed, query["q"]
    # and the check itself bites: a title word is caught
    assert shared_words("crimson tote", title_words(["Crimson Leather Tote by Nordlys"])) == {"crimson", "tote"}


def test_synonyms_share_no_word_with_the_titles_they_ask_for(catalog):
    queries = [q for q in build_queries(catalog, seed=3, counts=COUNTS) if q["tags"] == ["synonym"]]
    assert len(queries) == COUNTS["synonym"]
    for query in queries:
        target = Target(**query["target"])
        own = [title for _, product, title in catalog if (product.type, product.color) == (target.type, target.color)]
        assert own and not shared_words(query["q"], title_words(own)), (query["q"], own)
        assert shared_words(query["q"], title_words(t for _, _, t in catalog)), "catalog words, in other titles"


def test_a_title_with_a_paraphrase_word_removes_it(catalog):
    # If a shop's titles used "ruby", no paraphrase may use it; the rest still do.
    doctored = [(pk, t, f"{title} ruby vermilion pocketbook") for pk, t, title in catalog]
    for query in build_queries(doctored, seed=3, counts={**COUNTS, "paraphrase": 30}):
        if query["tags"] == ["paraphrase"]:
            assert not {"ruby", "vermilion", "pocketbook"} & set(query["q"].split())
    assert issubclass(ParaphraseError, ValueError)


def test_photo_files_are_written_and_load(catalog, tmp_path):
    path = generate_judgments(tmp_path / "out", seed=3, counts=COUNTS, name="demo")
    judgments = load_judgments(path)
    with_images = [j for j in judgments if j.image is not None]
    assert len(with_images) == COUNTS["photo"] + COUNTS["photo+text"]
    for judgment in with_images:
        assert judgment.image.parent == tmp_path / "out" / "demo-photos"
        assert Image.open(io.BytesIO(judgment.image.read_bytes())).format == "JPEG"
    refined = [j for j in judgments if j.tags == ["photo+text"]]
    assert all(j.q and j.image for j in refined)
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(not row["image"].startswith("/") for row in raw if "image" in row), "paths relative to the file"


def test_generation_is_deterministic_per_seed(catalog, tmp_path):
    first = generate_judgments(tmp_path / "a", seed=3, counts=COUNTS)
    again = generate_judgments(tmp_path / "b", seed=3, counts=COUNTS)
    other = generate_judgments(tmp_path / "c", seed=4, counts=COUNTS)
    assert first.read_text() == again.read_text()
    assert first.read_text() != other.read_text()
    photos = sorted((tmp_path / "a" / "judgments-seed3-photos").iterdir())
    assert [p.read_bytes() for p in photos] == [
        p.read_bytes() for p in sorted((tmp_path / "b" / "judgments-seed3-photos").iterdir())
    ]


def test_command_writes_the_file(catalog, tmp_path, capsys):
    counts = ["--plain", "5", "--synonym", "3", "--paraphrase", "4", "--photo", "2", "--photo-text", "1"]
    call_command("demo_judgments", "--output", str(tmp_path / "j.jsonl"), "--seed", "2", *counts)
    assert "Wrote 15 judged queries" in capsys.readouterr().out
    assert len(load_judgments(tmp_path / "j.jsonl")) == 15
    assert len(list((tmp_path / "j-photos").iterdir())) == 3
