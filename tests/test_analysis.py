"""catalog_search.analysis: the text analyzer shared by indexing and querying."""

from __future__ import annotations

import sys
import threading

import pytest
from django.test import override_settings

from catalog_search.analysis import ENGLISH_STOPWORDS, MAX_TOKEN_LENGTH, Analyzer, get_analyzer


@pytest.fixture(scope="module")
def english():
    return Analyzer()


# Normalization: NFKC, case folding, accent stripping


def test_accents_and_case_are_folded(english):
    assert english.tokens("Café CRÈME Brûlée naïve Ångström") == ["cafe", "creme", "brulee", "naive", "angstrom"]
    assert english.terms("Café") == english.terms("cafe") == english.terms("CAFÉ") == ["cafe"]


def test_decomposed_and_composed_accents_fold_alike(english):
    assert english.tokens("e\u0301clair") == english.tokens("\u00e9clair") == ["eclair"]


def test_full_width_letters_and_ligatures_are_normalized(english):
    assert english.tokens("ＲＥＤ Ｓｈｏｅｓ") == ["red", "shoes"]
    assert english.terms("ＲＥＤ Ｓｈｏｅｓ") == english.terms("red shoes") == ["red", "shoe"]
    assert english.tokens("ﬁne ２０２４") == ["fine", "2024"]


def test_case_folding_is_full_not_just_lowercase(english):
    assert english.tokens("Straße STRASSE") == ["strasse", "strasse"]


# Tokenization


def test_punctuation_splits_and_is_dropped(english):
    expected = "t shirt 100 cotton slim fit 1 e mail shop com".split()
    assert english.tokens("T-shirt, 100% cotton!!! (slim-fit) #1 e-mail@shop.com") == expected
    assert english.tokens("... --- !!! ¿? «»") == []
    assert english.tokens("") == []


def test_hebrew_and_arabic_words_are_kept_and_their_vowel_points_stripped(english):
    assert english.tokens("שמלה אדומה, 100% כותנה!") == ["שמלה", "אדומה", "100", "כותנה"]
    assert english.tokens("שָׁלוֹם") == ["שלום"]
    assert english.tokens("فستان أحمر") == ["فستان", "احمر"]
    assert english.tokens("مَرْحَبًا") == ["مرحبا"]


def test_greek_and_cyrillic_are_folded(english):
    assert english.tokens("Ελληνικά Привет") == ["ελληνικα", "привет"]


def test_devanagari_words_are_not_cut_at_vowel_signs():
    # "ि", "ी", "ु" are combining marks, not word characters for \w: a naive tokenizer splits "हिंदी" into "ह", "द".
    assert Analyzer(None).tokens("हिंदी कुर्ता, लाल") == ["हिंदी", "कुर्ता", "लाल"]
    assert Analyzer("hindi").terms("हिंदी कुर्ता") == ["हिंद", "कुर्त"]


def test_marks_that_spell_another_word_are_kept():
    # Japanese voicing marks and Thai tone marks are not accents: "glass" and "crow" stay distinct.
    analyzer = Analyzer(None)
    assert analyzer.tokens("ガラス カラス") == ["ガラス", "カラス"]
    assert analyzer.tokens("ไม้ ไม") == ["ไม้", "ไม"]


def test_hangul_stays_composed():
    tokens = Analyzer(None).tokens("한국어 가방")
    assert tokens == ["한국어", "가방"]
    assert [len(token) for token in tokens] == [3, 2]


def test_underscores_alone_are_not_tokens(english):
    assert english.tokens("red_shoes __ ___ _") == ["red_shoes"]


def test_overlong_tokens_are_dropped():
    analyzer = Analyzer(None)
    longest = "a" * MAX_TOKEN_LENGTH
    assert MAX_TOKEN_LENGTH == 64
    assert analyzer.tokens(f"ok {longest} {longest}b end") == ["ok", longest, "end"]


# Stopwords


def test_english_stopwords_are_removed_but_product_words_kept(english):
    assert english.tokens("The bag is on the top of the shelf") == ["bag", "top", "shelf"]
    assert english.tokens("50% OFF the shoulder top, over the knee") == ["50", "off", "shoulder", "top", "over", "knee"]
    assert {"off", "top", "over", "up", "down", "out", "one", "all"}.isdisjoint(ENGLISH_STOPWORDS)
    assert english.tokens("THE And Of") == []


def test_custom_stopwords_replace_the_builtin_list_and_are_folded():
    analyzer = Analyzer("english", stopwords=["Bag", "CAFÉ"])
    assert analyzer.tokens("the red bag BAGS cafe") == ["the", "red", "bags"]
    assert analyzer.terms("the red bag BAGS cafe") == ["the", "red", "bag"]
    assert Analyzer("english", stopwords=[]).tokens("the bag") == ["the", "bag"]


# Stemming


def test_english_snowball_stemming(english):
    assert english.terms("running shoes") == ["run", "shoe"]
    expected = "women s run shoe size 42 50 off".split()
    assert english.terms("Women's running shoes, size 42 — 50% off!") == expected
    assert english.terms("connections generalization happily") == ["connect", "general", "happili"]


def test_terms_keep_order_and_duplicates(english):
    assert english.terms("shoes Shoe SHOES red shoes") == ["shoe", "shoe", "shoe", "red", "shoe"]


def test_another_language_stems_its_own_words_without_english_stopwords():
    german = Analyzer("german")
    assert german.terms("Die roten Häuser und die Schuhe") == ["die", "rot", "haus", "und", "die", "schuh"]
    assert german.tokens("the bag") == ["the", "bag"]
    assert german.stopwords == frozenset()
    assert Analyzer("french").terms("Les chaussures rouges") == ["le", "chaussur", "roug"]


def test_no_language_disables_stemming_and_builtin_stopwords():
    analyzer = Analyzer(None)
    assert analyzer.language is None
    assert analyzer.terms("The Running shoes") == ["the", "running", "shoes"]


def test_language_name_is_case_insensitive():
    analyzer = Analyzer("English")
    assert analyzer.language == "english"
    assert analyzer.terms("the running shoes") == ["run", "shoe"]


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'klingon'.*CATALOG_SEARCH\['LANGUAGE'\].*english"):
        Analyzer("klingon")


def test_shared_analyzer_is_safe_across_threads(request):
    # One cached Analyzer serves every request thread; Snowball stemmers keep per-word state.
    words = " ".join(["running", "shoes", "generalization", "happiness", "connections", "beautifully"] * 200)
    analyzer = Analyzer()
    expected = Analyzer().terms(words)
    results: list[list[str] | BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a busy server does
    request.addfinalizer(lambda: sys.setswitchinterval(interval))

    def work():
        for _ in range(3):
            try:
                results.append(analyzer.terms(words))
            except BaseException as exc:  # an IndexError from a corrupted stemmer state
                results.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 18
    assert all(result == expected for result in results)


# Settings


def test_get_analyzer_follows_settings():
    default = get_analyzer()
    assert default.language == "english"
    assert default.terms("the running shoes") == ["run", "shoe"]
    assert get_analyzer() is default  # cached

    with override_settings(CATALOG_SEARCH={"LANGUAGE": "german", "STOPWORDS": ["rot", "Die"]}):
        german = get_analyzer()
        assert german.language == "german"
        assert german.stopwords == frozenset({"rot", "die"})
        assert german.terms("Die rote Schuhe rot the") == ["rot", "schuh", "the"]

    with override_settings(CATALOG_SEARCH={"LANGUAGE": None}):
        assert get_analyzer().terms("The Running shoes") == ["the", "running", "shoes"]

    with override_settings(CATALOG_SEARCH={"STOPWORDS": ("shoes",)}):
        assert get_analyzer().terms("the running shoes") == ["the", "run"]

    assert get_analyzer() is default
