"""``parse(q, indexes)``: what a query says, as structured parts and the free text the signals search.

1. Price phrases (prices.py) become bounds on each index's ``price_field``; their words leave the text.
2. The remaining words are compared with the catalog: one look-up of which terms some document has.
3. The query fields' values are recognised (values.py).
4. A word the catalog lacks and nothing recognises is corrected to the nearest catalog word (typos.py),
   and the values are recognised again over the corrected words ("snekers" -> sneakers -> a product type).

A recognised word stays in the text: titles that say "tote" keep matching "tote".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from catalog_search import conf
from catalog_search.analysis import get_analyzer
from catalog_search.registry import SearchIndex
from catalog_search.retrieval.bm25 import Presence
from catalog_search.retrieval.expansion import colors, thesaurus
from catalog_search.retrieval.understanding import prices, typos, values
from catalog_search.retrieval.understanding import synonyms as staff

logger = logging.getLogger(__name__)

# Words a shopper adds that name no product: never corrected or expanded into catalog words when the
# catalog lacks them ("cheap backpack" -> not "stunt" backpacks). Words the catalog has are searched as usual.
SHOPPING_WORDS = frozenset(
    "cheap cheaper cheapest affordable inexpensive budget bargain discount discounted sale deal deals best top "
    "new newest latest buy shop online price prices priced cost costs under over below above less more than "
    "between around about approx approximately max min maximum minimum least most upto up please want need "
    "looking something nice good great quality".split()
)


@dataclass
class Understanding:
    """What ``parse`` found: recognised values, price bounds, corrections and the text left to search."""

    text: str | None  # q without its price phrases, corrections applied: what the signals search
    values: list[values.Recognised] = field(default_factory=list)
    bounds: list[prices.Bound] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)  # typed word -> catalog word
    corrected_q: str | None = None  # q with the corrections, when there are any ("Showing results for ...")
    unexplained: list[str] = field(default_factory=list)  # words no value names (numbers, shopping words aside)


def shopping_words() -> frozenset[str]:
    configured = conf.settings().SHOPPING_WORDS
    return SHOPPING_WORDS if configured is None else frozenset(w.lower() for w in configured)


class _Guarded:
    """WordNet whose damaged files mean "not in WordNet": understanding never fails a search over them."""

    def __init__(self, wordnet: thesaurus.WordNet):
        self.wordnet = wordnet

    def related(self, word: str) -> dict[str, int]:
        try:
            return self.wordnet.related(word)
        except (thesaurus.ThesaurusUnavailable, ValueError, IndexError) as exc:
            logger.warning("catalog_search: WordNet unreadable, ignored: %s", exc)
            return {}


def _wordnet() -> _Guarded | None:
    wordnet = thesaurus.configured()
    return None if wordnet is None else _Guarded(wordnet)


def parse(
    q: str, indexes: Sequence[SearchIndex], *, correct: bool = True, presence: Presence | None = None
) -> Understanding:
    """Understand ``q`` for ``indexes`` (see the module docstring). ``presence``: the search's look-ups of
    which terms some document has (shared with expansion and the keyword signal; suggestions record their
    own there), a new one when not given."""
    bounds, text = prices.find(q) if any(index.price_field for index in indexes) else ([], q)
    analyzer = get_analyzer()
    tokens = analyzer.tokens(text)
    if not tokens:
        return Understanding(text or None, bounds=bounds)
    terms = analyzer.stem(tokens)
    content_types = [index.content_type.pk for index in indexes]
    known = (presence or Presence(content_types)).known(terms)
    found = values.matcher(indexes)
    wordnet = _wordnet()
    unknown = {i for i, term in enumerate(terms) if term not in known}
    recognised = values.recognise(tokens, terms, found, unknown=unknown, wordnet=wordnet)
    fixes: dict[str, str] = {}
    if correct and conf.settings().TYPO_CORRECTION:  # the staff's synonyms are words, never typos
        covered = {i for r in recognised for i in range(r.start, r.end)}
        covered |= staff.covered(staff.find(terms, staff.phrases(indexes)))
        misspelled = [tokens[i] for i in sorted(unknown - covered) if _may_be_typo(tokens[i], wordnet)]
        fixes = typos.corrections(misspelled, content_types) if misspelled else {}
    if fixes:
        tokens = [fixes.get(t, t) for t in tokens]
        terms = analyzer.stem(tokens)
        unknown = {i for i in unknown if tokens[i] not in fixes.values()}
        recognised = values.recognise(tokens, terms, found, unknown=unknown, wordnet=wordnet)
        text = _replace_words(text, fixes)
    covered = {i for r in recognised for i in range(r.start, r.end)}
    shopping = shopping_words()
    rest = [t for i, t in enumerate(tokens) if i not in covered and t not in shopping and not t.isdigit()]
    return Understanding(
        text.strip() or None,
        values=recognised,
        unexplained=rest,
        bounds=bounds,
        corrections=fixes,
        corrected_q=_replace_words(q, fixes) if fixes else None,
    )


def _may_be_typo(word: str, wordnet: _Guarded | None) -> bool:
    if not typos.correctable(word) or word in shopping_words() or colors.basic_color(word) is not None:
        return False
    return wordnet is None or not wordnet.related(word)


def _replace_words(text: str, fixes: dict[str, str]) -> str:
    """``text`` with each corrected word replaced, matched as a whole word in any case."""
    for typed, fixed in fixes.items():
        text = re.sub(rf"(?<!\w){re.escape(typed)}(?!\w)", fixed, text, flags=re.IGNORECASE)
    return text


def number(value: Decimal) -> int | float:
    """A bound as JSON shows it: 50, 19.99."""
    return int(value) if value == value.to_integral_value() else float(value)
