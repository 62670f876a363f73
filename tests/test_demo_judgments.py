"""The demo judgments generator on a small seeded catalog: grades, paraphrases, typos, price bounds, photos,
determinism."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from django.core.management import call_command
from PIL import Image

from catalog_search.analysis import get_analyzer
from catalog_search.offline.evaluation import load_judgments
from catalog_search.retrieval.understanding import prices as price_phrases
from demo_project.shop.artwork import TYPES_BY_SLUG
from demo_project.shop.catalog import generate
from demo_project.shop.judgments import (
    KINDS,
    PRICE_PHRASES,
    TYPO_EDITS,
    ParaphraseError,
    Target,
    build_queries,
    catalog_prices,
    catalog_products,
    catalog_words,
    generate_judgments,
    grade,
    shared_words,
    title_words,
    typo_edits,
)
from demo_project.shop.models import Product
from demo_project.shop.photos import COLORS

# The 160-product catalog has about two products per type: too few to bound by price (see big_catalog).
COUNTS = {"plain": 12, "synonym": 8, "paraphrase": 10, "photo": 4, "photo+text": 3, "typo": 10, "price": 0}
NONE = dict.fromkeys(KINDS, 0)


def _create(count: int) -> list:
    fields = ("title", "description", "category", "brand", "color", "pattern", "price", "in_stock", "attributes")
    Product.objects.bulk_create(Product(**{f: getattr(s, f) for f in fields}) for s in generate(count, 5))
    return catalog_products()


@pytest.fixture
def catalog(db):
    """The demo catalog's rows without their photos (the generator reads attributes and titles only)."""
    return _create(160)


@pytest.fixture
def big_catalog(db):
    """About 12 products per type: enough for price bounds with several products on each side."""
    return _create(1000)


def test_grade_follows_type_color_and_pattern():
    target = Target("handbag", "red", "striped")
    assert grade(Target("handbag", "red", "striped"), target) == 3
    assert grade(Target("handbag", "red", "solid"), target) == 2
    assert grade(Target("handbag", "blue", "striped"), target) == 1
    assert grade(Target("backpack", "red", "striped"), target) == 0  # same shop category (bags), other type


def test_generated_grades_match_the_database(catalog, tmp_path):
    path = generate_judgments(tmp_path, seed=3, counts=COUNTS)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert Counter(row["tags"][0] for row in rows) == {kind: COUNTS[kind] for kind in KINDS if COUNTS[kind]}
    products = {str(p.pk): p for p in Product.objects.all()}
    for row in rows:
        target = row["target"]
        if row["tags"] == ["price"]:
            continue  # no color or pattern: test_price_judgments_are_the_type_inside_the_bound
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
    counts += ["--typo", "2", "--price", "0"]
    call_command("demo_judgments", "--output", str(tmp_path / "j.jsonl"), "--seed", "2", *counts)
    assert "Wrote 17 judged queries" in capsys.readouterr().out
    judgments = load_judgments(tmp_path / "j.jsonl")
    assert len(judgments) == 17
    assert [bool(j.spelled) for j in judgments] == [False] * 15 + [True] * 2, "typo lines carry their spelling"
    assert len(list((tmp_path / "j-photos").iterdir())) == 3


def _edit_of(word: str, typed: str) -> str | None:
    """Which one edit of TYPO_EDITS turns ``word`` into ``typed`` (None if none does), worked out apart from
    the generator's own ``typo_edits``."""
    if len(typed) == len(word):
        differ = [i for i in range(len(word)) if word[i] != typed[i]]
        if len(differ) == 2 and differ[1] == differ[0] + 1:
            i = differ[0]
            if (typed[i], typed[i + 1]) == (word[i + 1], word[i]):
                return "swap"
        return None
    if len(typed) == len(word) - 1:
        return "drop" if any(word[:i] + word[i + 1 :] == typed for i in range(len(word))) else None
    if len(typed) == len(word) + 1:
        return "double" if any(word[: i + 1] + word[i] + word[i + 1 :] == typed for i in range(len(word))) else None
    return None


def test_typo_queries_make_one_edit_to_a_non_catalog_word(catalog):
    queries = build_queries(
        catalog, seed=3, counts={**NONE, "typo": 40}, prices=catalog_prices(), words=catalog_words()
    )
    assert len(queries) == 40 and all(q["tags"] == ["typo"] for q in queries)
    analyzer = get_analyzer()
    texts = [t for row in Product.objects.values_list("title", "description") for t in row]
    typed_words = {w for t in texts for w in analyzer.tokens(t)}
    stemmed_words = {w for t in texts for w in analyzer.terms(t)}
    edits = Counter()
    for query in queries:
        edit = query["typo"]
        typed, spelled = query["q"].split(" "), query["spelled"].split(" ")
        changed = [i for i, (a, b) in enumerate(zip(typed, spelled, strict=True)) if a != b]
        assert len(changed) == 1, query  # one word of the spelled query, the rest as spelled
        word, wrong = spelled[changed[0]], typed[changed[0]]
        assert (edit["word"], edit["typed"]) == (word, wrong)
        assert len(word) >= 5 and _edit_of(word, wrong) == edit["edit"] in TYPO_EDITS, query
        assert not set(analyzer.tokens(wrong)) & typed_words and not set(analyzer.terms(wrong)) & stemmed_words
        target = Target(**query["target"])
        assert target.pattern == "solid" and len(spelled) >= 2  # "color type", as plain queries say it
        edits[edit["edit"]] += 1
    assert set(edits) == set(TYPO_EDITS), edits  # every kind of edit occurs
    # The generator's list of edits is what _edit_of accepts, no more: "abcde" has 4 swaps, 5 drops, 5 doubles.
    assert sorted(e for e, _ in typo_edits("abcde")) == ["double"] * 5 + ["drop"] * 5 + ["swap"] * 4
    assert all(_edit_of("abcde", t) == e for e, t in typo_edits("abcde"))
    assert ("swap", "seed") not in typo_edits("seed") and _edit_of("sneakers", "snekaesr") is None  # two swaps


def test_a_typo_that_is_a_catalog_word_is_never_made(catalog):
    # If every one-edit misspelling were a catalog word, no typo query could be written.
    words = catalog_words()
    for terms in [*(t.terms for t in TYPES_BY_SLUG.values()), *(c.terms for c in COLORS.values())]:
        for word in " ".join(terms).split(" "):
            words |= {typed.lower() for _, typed in typo_edits(word)}
    queries = build_queries(catalog, seed=3, counts={**NONE, "typo": 20}, words=words)
    assert queries == []


def test_price_judgments_are_the_type_inside_the_bound(big_catalog):
    queries = build_queries(big_catalog, seed=3, counts={**NONE, "price": 30}, prices=catalog_prices())
    assert len(queries) == 30 and all(q["tags"] == ["price"] for q in queries)
    shapes = Counter()
    for query in queries:
        slug, bound = query["target"]["type"], query["target"]["price"]
        of_type = Product.objects.filter(attributes__type=slug)
        inside = of_type.filter(**{f"price__{lookup}": value for lookup, value in bound.items()})
        assert query["relevant"] == {str(pk): 1 for pk in inside.values_list("pk", flat=True)}, query
        n, k = of_type.count(), inside.count()
        assert min(10, n // 2) <= k <= n - max(2, n // 5), (query, n, k)  # several inside, some outside
        assert not of_type.filter(price__in=list(bound.values())).exists(), "no product exactly at the bound"
        # The phrase says the bound: the engine's own price parser reads it back.
        found, _ = price_phrases.find(query["q"])
        assert {b.lookup: b.value for b in found} == bound, query["q"]
        assert any(query["q"].startswith(f"{term} ") for term in TYPES_BY_SLUG[slug].terms), "names the type"
        shapes["range" if len(bound) == 2 else next(iter(bound))] += 1
    assert set(shapes) == {"lte", "gte", "range"}, shapes
    assert len({q["target"]["type"] for q in queries}) == 30  # one query per type
    assert set(PRICE_PHRASES) == {"lte", "gte", "range"}


def test_new_kinds_leave_the_old_kinds_alone(catalog):
    old = build_queries(catalog, seed=3, counts={**COUNTS, "typo": 0, "price": 0})
    new = build_queries(catalog, seed=3, counts={**COUNTS, "typo": 25}, prices=catalog_prices(), words=catalog_words())
    assert new[: len(old)] == old and len(new) == len(old) + 25
