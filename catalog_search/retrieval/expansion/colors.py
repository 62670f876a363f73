"""Color names a catalog does not use, mapped to the basic color word it probably does ("ruby" -> red).

Shoppers name colors with words no product text contains ("ruby", "cerulean", "mocha"); an encoder's
single-word embeddings place many of them near other gems, foods or animals rather than near the
color (docs/relevance.md). The xkcd color survey names 949 colors (``color_names.py`` keeps 910); 480
of those names end in one of the eleven basic color terms of English (Berlin and Kay: black, white, red,
green, yellow, blue, brown, purple, pink, orange, grey), e.g. "dark red", "dusty blue", "reddish
brown", which makes them examples of where each basic color lies. Any other survey name gets the basic
term of the example nearest to it in CIELAB (the color space where distance follows perceived
difference). The mapping comes from the survey's own names; nothing in it is tuned to a catalog.
"""

from __future__ import annotations

import math
from functools import cache

from catalog_search.retrieval.expansion.color_names import XKCD

BASIC = ("black", "white", "red", "green", "yellow", "blue", "brown", "purple", "pink", "orange", "grey")
SPELLINGS = {"gray": "grey"}  # the survey spells both; one basic term each


def _lab(hex_color: str) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB ``#rrggbb``."""

    def linear(c: float) -> float:
        return ((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92

    r, g, b = (linear(int(hex_color[i : i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


@cache
def _examples() -> list[tuple[tuple[float, float, float], str]]:
    """(CIELAB, basic term) of every survey name whose last word is a basic term and no other word is."""
    out = []
    for name, hex_color in XKCD.items():
        *modifiers, head = name.split()
        head = SPELLINGS.get(head, head)
        if head in BASIC and not any(SPELLINGS.get(m, m) in BASIC for m in modifiers):
            out.append((_lab(hex_color), head))
    return out


@cache
def _basic_terms() -> dict[str, str]:
    """Every one-word survey name -> its basic term, worked out once per process (a bounded table: a
    cache keyed by the words clients send would grow without end)."""
    examples = _examples()
    out = {}
    for name, hex_color in XKCD.items():
        if " " not in name and "/" not in name:
            lab = _lab(hex_color)
            out[name] = min(examples, key=lambda example: math.dist(lab, example[0]))[1]
    return out


def basic_color(word: str) -> str | None:
    """The basic color term of a one-word survey color name (``word`` lower-case), or None if it is not
    one. A basic term is its own ("red" -> red, "gray" -> grey)."""
    word = SPELLINGS.get(word, word)
    return word if word in BASIC else _basic_terms().get(word)


def nearest_values(values: list[str]) -> dict[str, str]:
    """Every one-word survey color name -> the one of ``values`` (a shop's color values) it names: among
    the values of the same basic color, the nearest in CIELAB. So a shop with teal and navy beside blue
    gets "aqua" and "turquoise" as teal, "sapphire" as blue; one with only blue gets them all as blue.
    Values that are no survey color ("Midnight") are left to their own name and synonyms."""
    known = {value: key for value in values if (key := SPELLINGS.get(value.lower(), value.lower())) in XKCD}
    by_basic: dict[str, list[tuple[tuple[float, float, float], str]]] = {}
    for value, key in known.items():
        by_basic.setdefault(basic_color(key) or "", []).append((_lab(XKCD[key]), value))
    out = {}
    for name in _basic_terms():
        candidates = by_basic.get(basic_color(name) or "", [])
        if candidates:
            lab = _lab(XKCD[name])
            out[name] = min(candidates, key=lambda candidate: math.dist(lab, candidate[0]))[1]
    return out
