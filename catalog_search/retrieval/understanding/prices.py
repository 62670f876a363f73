"""Price phrases in a query: "under 50", "below $50", "20-40 dollars", "between 20 and 40", "over 100".

A phrase is found in the query as typed (case folded), before analysis, and its words are taken out of the
text the signals search: a shopper who writes "under 50" asks for a bound, not for products that say
"under". Upper bounds ("under", "below", "less than", "up to", "50 or less", ...) all mean ``<=``, lower
bounds (``over``, ``above``, ``more than``, ``from``, ``50 or more``, ...) ``>=``; a range gives both, its ends
swapped when written backwards ("between 50 and 20"). A number is digits (thousands separators and two
decimals allowed: "1,000", "19.99", "19,99") with a currency symbol or word around it optionally
(``CURRENCY_SYMBOLS``, ``CURRENCY_WORDS``). Not a price: a negative number ("under -5": no bound), one
that runs into letters ("1e309", "40cm"), more than nine digits, and a bare range (no currency) after a
size word or before a unit ("sizes 36-42", "2-4 person"; but "train set $15-$35" is a price). Numbers in the query that are no phrase stay query words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from catalog_search import conf

UPPER = ("under", "below", "less than", "cheaper than", "up to", "upto", "at most", "no more than", "max", "maximum")
UPPER_AFTER = ("or less", "or under", "and under", "or below", "max", "maximum", "or cheaper")
LOWER = ("over", "above", "more than", "at least", "from", "starting at", "min", "minimum", "no less than")
LOWER_AFTER = ("or more", "and up", "and above", "and over", "plus", "+")
# Before a bare "N-N": it is a size, an age or a count, not a price; after it, a unit.
NOT_PRICE_BEFORE = ("size", "sizes", "age", "ages", "aged", "waist", "eu", "uk", "us", "pack", "set", "pieces")
NOT_PRICE_AFTER = ("cm", "mm", "m", "l", "ml", "gb", "tb", "kg", "g", "inch", "inches", "person", "persons",
                   "people", "piece", "pieces", "years", "year", "months", "mp", "oz", "h", "hours")  # fmt: skip


@dataclass(frozen=True)
class Bound:
    """One side of a price constraint: ``lookup`` "gte" or "lte", and the words it came from."""

    lookup: str
    value: Decimal
    words: str


def _alternatives(words: tuple[str, ...]) -> str:
    ordered = sorted(words, key=len, reverse=True)  # "less than" before "less"
    return "|".join(r"\s+".join(map(re.escape, w.split())) for w in ordered)


@lru_cache(maxsize=8)
def _pattern(symbols: tuple[str, ...], currency_words: tuple[str, ...]) -> re.Pattern[str]:
    symbol = "|".join(map(re.escape, symbols)) or r"(?!x)x"
    word = _alternatives(currency_words) or r"(?!x)x"
    # Not after a minus sign (a "-" after a space, or first), but after a range's dash ("20-40").
    unsigned = r"(?<![\w.,−])(?<!\s-)(?<!^-)"
    number = rf"{unsigned}(?:\d{{1,3}}(?:,\d{{3}})+(?:\.\d{{1,2}})?|\d{{1,9}}(?:[.,]\d{{1,2}})?)(?![\w.,])"

    def money(name: str) -> str:
        return rf"(?:(?:{symbol})\s*)?(?P<{name}>{number})(?:\s*(?:{symbol})|\s+(?:{word})\b)?"

    ranged = (
        rf"(?:\b(?:between|from)\s+{money('a')}\s+(?:and|to|-)\s+{money('b')})"
        rf"|(?P<before>\b\w+\s+)?{money('c')}\s*(?:-|–|to\b)\s*{money('d')}(?P<after>\s+\w+)?"
    )
    upper = rf"(?:\b(?:{_alternatives(UPPER)})\s*{money('u')}|<=?\s*{money('v')}|{money('w')}\s+(?:{_alternatives(UPPER_AFTER)})\b)"
    lower = (
        rf"(?:\b(?:{_alternatives(LOWER)})\s*{money('o')}|>=?\s*{money('p')}"
        rf"|{money('r')}\s*(?:(?:{_alternatives(LOWER_AFTER[:-1])})\b|\+))"
    )
    return re.compile(rf"(?P<range>{ranged})|(?P<upper>{upper})|(?P<lower>{lower})", re.IGNORECASE)


def _decimal(text: str) -> Decimal:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?", text):
        return Decimal(text.replace(",", ""))
    return Decimal(text.replace(",", "."))


def _has_currency(found: re.Match[str], settings: conf.Settings) -> bool:
    """Whether the range itself ("$15-$35", "15-35 euros") names a currency: a price, whatever is around it."""
    text = found.group()[len(found.group("before") or "") : len(found.group()) - len(found.group("after") or "")]
    words = set(re.findall(r"\w+", text.lower()))
    return any(s in text for s in settings.CURRENCY_SYMBOLS) or bool(
        words & {w.lower() for w in settings.CURRENCY_WORDS}
    )


def _bare_range_is_size(found: re.Match[str]) -> bool:
    """A "N-N" with no currency and no between/from: a size or a count when a size word or a unit is next."""
    before = (found.group("before") or "").strip().lower()
    after = (found.group("after") or "").strip().lower()
    return before in NOT_PRICE_BEFORE or after in NOT_PRICE_AFTER


def find(text: str) -> tuple[list[Bound], str]:
    """The price bounds of ``text`` and the text without their words."""
    settings = conf.settings()
    pattern = _pattern(tuple(settings.CURRENCY_SYMBOLS), tuple(w.lower() for w in settings.CURRENCY_WORDS))
    bounds: list[Bound] = []
    kept: list[str] = []
    end = 0
    for found in pattern.finditer(text):
        start, stop = found.span()
        if found.group("range"):
            low, high = found.group("a") or found.group("c"), found.group("b") or found.group("d")
            if found.group("c") and not _has_currency(found, settings) and _bare_range_is_size(found):
                continue
            if found.group("c"):  # the words around a bare range were only looked at, not taken
                start += len(found.group("before") or "")
                stop -= len(found.group("after") or "")
            a, b = sorted((_decimal(low), _decimal(high)))
            words = text[start:stop].strip()
            bounds += [Bound("gte", a, words), Bound("lte", b, words)]
        elif found.group("upper"):
            value = found.group("u") or found.group("v") or found.group("w")
            bounds.append(Bound("lte", _decimal(value), text[start:stop].strip()))
        else:
            value = found.group("o") or found.group("p") or found.group("r")
            bounds.append(Bound("gte", _decimal(value), text[start:stop].strip()))
        kept.append(text[end:start])
        end = stop
    kept.append(text[end:])
    return bounds, " ".join(" ".join(kept).split())
