"""Query expansion over the real embedded PostgreSQL: unknown words get the nearest catalog word.

The tiny test encoder knows no language, so these tests give it word vectors of their own (a stand-in
``encode_texts``): "pocketbook" is made close to "handbag", "zzz" close to nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client, override_settings

import catalog_search
from catalog_search import conf
from catalog_search.encoding.active import active_encoder
from catalog_search.indexing import sync, vocabulary
from catalog_search.retrieval.expansion.words import expand, term_groups

pytestmark = pytest.mark.django_db

SETTINGS = {"QUERY_EXPANSION": True, "EXPANSION_THRESHOLD": 0.5, "EXPANSION_TERMS": 1, "QUERY_CACHE": None}


def _settings(**extra):
    from django.conf import settings

    return override_settings(CATALOG_SEARCH={**getattr(settings, "CATALOG_SEARCH", {}), **SETTINGS, **extra})


@pytest.fixture
def shop(make_product, product_index, encoder, monkeypatch):
    make_product("Red leather handbag", description="Roomy handbag", color="red")
    make_product("Blue canvas tote", description="Light tote", color="blue")
    make_product("Black leather boots", description="Waterproof boots", category="shoes", color="black")
    assert not sync.reindex(product_index, encoder).failed
    row, loaded = active_encoder()
    original = loaded.encode_texts
    rng = np.random.default_rng(0)
    fixed: dict[str, np.ndarray] = {}

    def word_vector(text: str) -> np.ndarray:
        if text not in fixed:
            fixed[text] = rng.standard_normal(row.dim).astype(np.float32)  # nearly orthogonal to the others
        return fixed[text]

    def encode_texts(texts):
        if len(texts) == 1 and " " in texts[0]:  # a whole query: the real encoder
            return original(texts)
        vectors = []
        for text in texts:
            # "pocketbook" at cosine 0.8 from "handbag"; "boot" (a stem's spelling) is never asked for
            vector = word_vector("handbag") * 0.8 / np.linalg.norm(word_vector("handbag"))
            if text == "pocketbook":
                other = word_vector("pocketbook")
                other = other - other @ vector / (vector @ vector) * vector
                vector = vector + 0.6 * other / np.linalg.norm(other)
            else:
                vector = word_vector(text)
            vectors.append(vector / np.linalg.norm(vector))
        return np.stack(vectors).astype(np.float32)

    monkeypatch.setattr(loaded, "encode_texts", encode_texts)
    with _settings():
        count = vocabulary.build_vocabulary(row, loaded)
    assert count == 11  # red leather handbag roomy blue canvas tote light black boots waterproof
    return row, loaded


def test_catalog_words_are_one_spelling_per_index_term(shop):
    words, terms = vocabulary.catalog_words()
    assert terms == sorted(terms) and len(words) == len(terms)
    assert dict(zip(terms, words, strict=True))["boot"] == "boots"
    assert "handbag" in words and "the" not in words


def test_an_unknown_word_gets_its_nearest_catalog_word(shop):
    row, loaded = shop
    with _settings():
        found = expand("pocketbook", catalog_search.registry.get_indexes(), row, loaded)
    assert found.added == {"pocketbook": [("handbag", pytest.approx(0.8, abs=1e-3))]}
    assert found.terms == ["handbag"]
    assert found.text == "pocketbook handbag"


def test_known_words_and_far_words_are_left_alone(shop):
    row, loaded = shop
    with _settings():
        indexes = catalog_search.registry.get_indexes()
        assert expand("red tote", indexes, row, loaded).added == {}
        assert expand("red zzz", indexes, row, loaded).added == {}  # nothing above 0.5
    with _settings(EXPANSION_THRESHOLD=0.9, EXPANSION_THESAURUS=None):
        assert expand("pocketbook", indexes, row, loaded).added == {}


def test_search_finds_the_handbag_for_pocketbook_only_when_enabled(shop):
    with _settings(QUERY_EXPANSION=False):
        plain = catalog_search.search(q="pocketbook", mode="bm25")
        assert plain.results == [] and "expanded" not in plain.query
    with _settings():
        assert conf.settings().QUERY_EXPANSION
        found = catalog_search.search(q="pocketbook", mode="bm25")
        assert [h.object.title for h in found.results] == ["Red leather handbag"]
        assert found.query["expanded"] == {"pocketbook": ["handbag"]}
        response = Client().get("/api/search/", {"q": "pocketbook", "mode": "bm25"})
        assert response.status_code == 200 and response.json()["query"]["expanded"] == {"pocketbook": ["handbag"]}
        page = Client().get("/", {"q": "pocketbook"}).content.decode()
        assert "Also searched: “pocketbook” → handbag" in page and "Red leather handbag" in page
        assert "expanded" not in catalog_search.search(q="leather handbag", mode="bm25").query
        assert 'id="expanded" hidden' in Client().get("/", {"q": "leather"}).content.decode()
        vector_only = catalog_search.search(q="pocketbook", mode="vector")
        assert vector_only.results and all(h.scores["bm25"] is None for h in vector_only.results)


def test_a_word_that_left_the_index_is_not_added(shop, product_index, encoder):
    from demo_project.shop.models import Product

    Product.objects.filter(title__contains="handbag").delete()
    sync.reindex(product_index, encoder)
    row, loaded = shop
    with _settings():
        found = expand("pocketbook", catalog_search.registry.get_indexes(), row, loaded)
    assert found.added == {}


def test_the_sweep_keeps_the_vocabulary_current(shop, make_product, product_index, encoder):
    """tasks.sweep rebuilds the vocabulary when the active encoder has none and when the catalog has
    gained enough words it lacks (REFRESH_MIN_NEW: 10 here); otherwise it leaves it alone, and does
    nothing with expansion off."""
    from catalog_search.models import Vocabulary
    from catalog_search.tasks import sweep

    row, _ = shop
    with _settings(QUERY_EXPANSION=False):
        assert vocabulary.refresh() == "off"
    with _settings():
        assert vocabulary.refresh() == "current"
        Vocabulary.objects.filter(encoder=row).delete()
        assert sweep()["vocabulary"] == f"built 11 words for {row.identity}"
        assert len(Vocabulary.objects.get(encoder=row).words) == 11
        # Four new words: under the threshold (10), the vocabulary stays as it is.
        make_product("Green wool scarf", description="Knitted")
        assert not sync.reindex(product_index, encoder).failed
        assert vocabulary._new_terms(list(Vocabulary.objects.get(encoder=row).terms)) == 4
        assert vocabulary.refresh() == "current"
        make_product("Purple silk necktie", description="Striped winter tie")
        assert not sync.reindex(product_index, encoder).failed
        assert vocabulary.refresh() == f"built 21 words for {row.identity}"
        assert "necktie" in Vocabulary.objects.get(encoder=row).words


def test_an_expanded_search_looks_the_active_encoder_up_once(shop):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with _settings(), CaptureQueriesContext(connection) as queries:
        found = catalog_search.search(q="pocketbook")
    assert found.query["expanded"] == {"pocketbook": ["handbag"]}
    assert sum('FROM "catalog_search_encoder"' in q["sql"] for q in queries.captured_queries) == 1


@pytest.mark.parametrize(
    ("word", "basic"),
    [
        ("ruby", "red"),
        ("crimson", "red"),
        ("cerulean", "blue"),
        ("sapphire", "blue"),
        ("mocha", "brown"),
        ("amethyst", "purple"),
        ("jade", "green"),
        ("ivory", "white"),
        ("red", "red"),
        ("gray", "grey"),
        ("handbag", None),
        ("tote", None),
    ],
)
def test_a_color_name_maps_to_its_basic_color_term(word, basic):
    from catalog_search.retrieval.expansion import colors

    assert colors.basic_color(word) == basic


def test_every_example_of_a_basic_color_is_nearest_to_itself():
    """The survey's "<modifiers> <basic term>" names are the examples: each one, looked up by its own
    color, finds an example at distance 0 of its own term (ties between equal colors aside)."""
    from catalog_search.retrieval.expansion import colors

    examples = colors._examples()
    assert {term for _, term in examples} == set(colors.BASIC)
    assert len(examples) > 400
    for name in ("dark red", "dusty blue", "reddish brown", "pale pink"):
        lab = colors._lab(colors.XKCD[name])
        assert {term for point, term in examples if point == lab} == {name.split()[-1]}


def test_an_unknown_color_name_adds_its_basic_color_term(shop):
    row, loaded = shop
    indexes = catalog_search.registry.get_indexes()
    with _settings():
        found = expand("ruby pocketbook", indexes, row, loaded)
        assert found.added == {"ruby": [("red", 1.0)], "pocketbook": [("handbag", pytest.approx(0.8, abs=1e-3))]}
        assert found.terms == ["red", "handbag"] and found.text == "ruby pocketbook red handbag"
        # A color whose basic term no product has ("lavender" -> purple) falls back to the encoder's words
        # (and WordNet's, which relate lavender to blue: another color adjective).
        with _settings(EXPANSION_THESAURUS=None):
            assert expand("lavender", indexes, row, loaded).added == {}
        assert [h.object.title for h in catalog_search.search(q="ruby", mode="bm25").results] == ["Red leather handbag"]
    with _settings(EXPANSION_COLORS=False, EXPANSION_THESAURUS=None):  # the encoder's nearest: none above 0.5
        assert expand("ruby", indexes, row, loaded).added == {}
        assert catalog_search.search(q="ruby", mode="bm25").results == []
    with _settings(LANGUAGE="german"):  # the survey's names are English
        assert expand("ruby", indexes, row, loaded).added == {}


def test_a_color_term_is_added_once_and_first(shop):
    """With every catalog word above the threshold, "ruby" gets red (its color) first, then the encoder's
    nearest word that is not red: red is never added twice."""
    row, loaded = shop
    with _settings(EXPANSION_TERMS=3, EXPANSION_THRESHOLD=-1.0):
        found = expand("ruby", catalog_search.registry.get_indexes(), row, loaded)
    added = found.added["ruby"]
    assert added[0] == ("red", 1.0) and len(added) == 3
    assert [w for w, _ in added].count("red") == 1 and len(set(found.terms)) == 3


def test_a_dictionary_relation_adds_the_catalog_word(shop):
    """WordNet (EXPANSION_THESAURUS): "holdall" is a synonym of tote, "footwear" a hypernym of boot; the
    test encoder knows neither word (no catalog word above the threshold), so only the thesaurus adds."""
    row, loaded = shop
    indexes = catalog_search.registry.get_indexes()
    with _settings():
        found = expand("holdall footwear", indexes, row, loaded)
        assert {word: [w for w, _ in added] for word, added in found.added.items()} == {
            "holdall": ["tote"],
            "footwear": ["boots"],  # the catalog's spelling of the term
        }
        assert found.terms == ["tote", "boot"] and found.text == "holdall footwear tote boots"
        titles = [h.object.title for h in catalog_search.search(q="waterproof footwear", mode="bm25").results]
        assert titles == ["Black leather boots"]
        # A relation is evidence of its own: it is added below the encoder's threshold, at its cosine.
        with _settings(EXPANSION_THRESHOLD=0.99):
            assert expand("pocketbook", indexes, row, loaded).added == {
                "pocketbook": [("handbag", pytest.approx(0.8, abs=1e-3))]
            }
    for off in ({"EXPANSION_THESAURUS": None}, {"LANGUAGE": "german"}):
        with _settings(**off):
            assert expand("holdall footwear", indexes, row, loaded).added == {}


def test_close_relations_then_the_encoder_then_far_relations(shop, monkeypatch):
    """ "purses": handbag is a synonym (distance 0), tote a co-hyponym (distance 2). Made identical to
    "boots" for the encoder, it gets handbag first, then boots (the encoder's), then a distance-2 word;
    no term twice."""
    row, loaded = shop
    encode = loaded.encode_texts
    monkeypatch.setattr(loaded, "encode_texts", lambda texts: encode(["boots" if t == "purses" else t for t in texts]))
    with _settings(EXPANSION_TERMS=3):
        added = expand("purses", catalog_search.registry.get_indexes(), row, loaded).added["purses"]
    words = [w for w, _ in added]
    assert words[:2] == ["handbag", "boots"] and words[2] in {"tote", "red"}  # WordNet: both at distance 2
    assert added[1][1] == pytest.approx(1.0, abs=1e-4) and len(set(words)) == 3
    with _settings(EXPANSION_TERMS=1):
        assert expand("purses", catalog_search.registry.get_indexes(), row, loaded).terms == ["handbag"]


def test_a_missing_thesaurus_leaves_expansion_working(shop, tmp_path, caplog):
    row, loaded = shop
    with _settings(EXPANSION_THESAURUS=str(tmp_path)):
        found = expand("pocketbook holdall", catalog_search.registry.get_indexes(), row, loaded)
    assert found.added == {"pocketbook": [("handbag", pytest.approx(0.8, abs=1e-3))]}  # the encoder's
    assert "lacks index.noun" in caplog.text


def test_two_unknown_words_wordnet_has_as_one_lemma_are_one_unit(shop):
    """ "shoulder bag" is a WordNet lemma (a kind of handbag): expanded as one unit, not word by word;
    "shoulder" alone is not expanded (nothing related in the catalog, nothing near for the encoder)."""
    row, loaded = shop
    indexes = catalog_search.registry.get_indexes()
    with _settings():
        found = expand("roomy shoulder bag", indexes, row, loaded)
        assert list(found.added) == ["shoulder bag"] and found.added["shoulder bag"][0][0] == "handbag"
        assert found.text.startswith("roomy shoulder bag handbag")
        assert "shoulder" not in expand("shoulder", indexes, row, loaded).added
        # Words apart stay apart: "bag red shoulder" has no compound (and bag -> handbag as a hyponym).
        assert set(expand("bag red shoulder", indexes, row, loaded).added) == {"bag"}
    with _settings(EXPANSION_THESAURUS=None):
        assert "shoulder bag" not in expand("shoulder bag", indexes, row, loaded).added


def test_term_groups_put_a_word_and_its_expansion_together():
    groups = term_groups(["rubi", "pocketbook", "red"], {"ruby": ["red"], "pocketbook": ["wallet", "purs"]})
    assert groups["pocketbook"] == groups["wallet"] == groups["purs"]
    assert len({groups["rubi"], groups["pocketbook"], groups["red"]}) == 3  # red is a query word of its own
    compound = term_groups(["four", "poster", "bed"], {"four poster": ["bed"]})
    assert compound["four"] == compound["poster"] and compound["bed"] != compound["four"]


def test_minimum_should_match_counts_query_words_not_added_terms(shop):
    """ "purses roomy leather" with two catalog words added for "purses": three words, so 75% asks for two
    of them (not for 75% of the five terms), in the SQL the search runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog_search.retrieval import bm25

    row, loaded = shop
    index = catalog_search.registry.get_indexes()[0]
    with _settings(EXPANSION_TERMS=2, MINIMUM_SHOULD_MATCH="75%"):
        found = expand("purses roomy leather", [index], row, loaded)
        assert len(found.groups["purses"]) == 2
        terms = ["purs", "roomi", "leather", *found.terms]
        grouped = bm25.match(index.content_type.pk, terms, term_groups(terms[:3], found.groups))
        assert grouped.required == 2 and bm25.match(index.content_type.pk, terms).required == 3
        with CaptureQueriesContext(connection) as queries:
            results = catalog_search.search(q="purses roomy leather", mode="bm25")
        assert results.results[0].object.title == "Red leather handbag"
        assert any("count(DISTINCT t.grp) >=" in q["sql"] for q in queries.captured_queries)


def test_damaged_thesaurus_files_leave_expansion_working(shop, tmp_path, caplog):
    from tests.test_thesaurus import damaged_wordnet

    row, loaded = shop
    with _settings(EXPANSION_THESAURUS=str(damaged_wordnet(tmp_path))):
        found = expand("pocketbook", catalog_search.registry.get_indexes(), row, loaded)
        assert found.added == {"pocketbook": [("handbag", pytest.approx(0.8, abs=1e-3))]}  # the encoder's
        assert catalog_search.search(q="pocketbook holdall").results  # no error reaches the search
    assert "not a WordNet index" in caplog.text


def test_explain_says_where_each_added_word_comes_from(shop):
    with _settings():
        body = Client().get("/api/search/", {"q": "ruby holdall footwear", "mode": "bm25", "explain": "1"}).json()
        why = {word: [(a["word"], a["source"]) for a in added] for word, added in body["query"]["expansion"].items()}
        assert why == {
            "ruby": [("red", "color")],
            "holdall": [("tote", "wordnet 0")],
            "footwear": [("boots", "wordnet 1")],
        }
        assert body["query"]["expansion"]["ruby"][0]["cosine"] == 1.0
        assert "expansion" not in Client().get("/api/search/", {"q": "ruby holdall", "mode": "bm25"}).json()["query"]
    with _settings(EXPANSION_THESAURUS=None):
        body = Client().get("/api/search/", {"q": "pocketbook", "mode": "bm25", "explain": "1"}).json()
        assert body["query"]["expansion"] == {"pocketbook": [{"word": "handbag", "source": "encoder", "cosine": 0.8}]}


def test_shopping_words_are_never_expanded(shop):
    """ "cheap" is in no product text; it names no product, so it gets no catalog words (it once got "free,
    stunt" on the demo)."""
    from catalog_search.retrieval.understanding.parse import shopping_words

    row, loaded = shop
    with _settings(EXPANSION_THRESHOLD=-1.0):  # any word would get its nearest catalog words
        assert "cheap" in expand("cheap pocketbook", catalog_search.registry.get_indexes(), row, loaded).added
        found = expand("cheap pocketbook", catalog_search.registry.get_indexes(), row, loaded, skip=shopping_words())
        assert list(found.added) == ["pocketbook"]
        body = Client().get("/api/search/", {"q": "cheap pocketbook under 50"}).json()
        assert set(body["query"].get("expanded", {})) <= {"pocketbook"}
