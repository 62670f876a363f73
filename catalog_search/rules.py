"""Query rules staff keep in the admin (``QueryRule`` and its ``RuleProduct`` rows), as searches read them.

A rule applies to a query that *is* its words or *contains* them (a phrase, compared as the index compares
words: folded and stemmed, so "Red Sneaker" is "red sneakers"), on one index or every index, while it is
enabled and inside its optional dates. What it does is retrieval/rules.py's: pins, hides, a boost or bury
of products matching a filter, a redirect. Each process keeps a copy of the enabled rules (``ProcessCopy``,
``RULES_REFRESH_SECONDS``); the dates are checked at every search, so a rule starts and ends on time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs

from django.db.models import Count, Max

from catalog_search import conf, databases
from catalog_search.analysis import get_analyzer
from catalog_search.copies import ProcessCopy
from catalog_search.models import QueryRule, RuleProduct

MAX_POSITION = 1000


@dataclass(frozen=True)
class Rule:
    """One enabled rule as a search applies it."""

    id: int
    name: str
    index: str  # "" for every index
    match: str  # QueryRule.Match
    terms: tuple[str, ...]
    starts_at: datetime | None
    ends_at: datetime | None
    boost_filter: dict[str, list[str]]  # {"brand": ["Kestrel"]}: the API's filter parameters
    boost_factor: float
    redirect: str
    pins: tuple[tuple[int, str], ...]  # (position, object id), by position
    hides: frozenset[str]

    def live(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)

    def matches(self, terms: Sequence[str]) -> bool:
        """Whether a query of ``terms`` is (or contains, as a phrase) the rule's words."""
        if not self.terms:
            return False
        if self.match == QueryRule.Match.IS:
            return tuple(terms) == self.terms
        n = len(self.terms)
        return any(tuple(terms[i : i + n]) == self.terms for i in range(len(terms) - n + 1))

    def applies_to(self, label: str) -> bool:
        return not self.index or self.index == label


def boost_filter(text: str) -> dict[str, list[str]]:
    """``brand=Kestrel&price__lte=50`` as the API's filter parameters (a name repeated: values OR-ed)."""
    return {name: values for name, values in parse_qs(text.strip(), keep_blank_values=True).items()}


def safe_redirect(url: str) -> str:
    """``url`` if it is a page of this site ("/sale/") or an http(s) address, else "": a page follows it, so
    a "javascript:" URL written around the admin's check must never reach one."""
    url = url.strip()
    local = url.startswith("/") and not url.startswith(("//", "/\\"))
    return url if local or url.lower().startswith(("https://", "http://")) else ""


def _stamp() -> tuple:
    # On the running search's database (a standby's lag is the delay a change may take, like any row's).
    rules = databases.using(QueryRule.objects).aggregate(n=Count("pk"), latest=Max("updated_at"))
    products = databases.using(RuleProduct.objects).aggregate(n=Count("pk"), last=Max("pk"))
    return rules["n"], rules["latest"], products["n"], products["last"]


def _read() -> tuple[Rule, ...]:
    analyzer = get_analyzer()
    pins: dict[int, list[tuple[int, str]]] = {}
    hides: dict[int, set[str]] = {}
    for rule_id, action, object_id, position in (
        databases.using(RuleProduct.objects)
        .filter(rule__enabled=True)
        .values_list("rule_id", "action", "object_id", "position")
    ):
        if action == RuleProduct.Action.HIDE:
            hides.setdefault(rule_id, set()).add(object_id)
        elif position is not None and 1 <= position <= MAX_POSITION:
            pins.setdefault(rule_id, []).append((position, object_id))
    return tuple(
        Rule(
            id=row.pk,
            name=row.name,
            index=row.index,
            match=row.match,
            terms=tuple(analyzer.terms(row.query)),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            boost_filter=boost_filter(row.boost_filter) if row.boost_filter.strip() else {},
            boost_factor=row.boost_factor,
            redirect=safe_redirect(row.redirect_url),
            pins=tuple(sorted(pins.get(row.pk, []))),
            hides=frozenset(hides.get(row.pk, ())),
        )
        for row in databases.using(QueryRule.objects).filter(enabled=True).order_by("pk")
    )


_copy: ProcessCopy[tuple[Rule, ...]] = ProcessCopy(
    "query rules", stamp=_stamp, read=_read, refresh=lambda: conf.settings().RULES_REFRESH_SECONDS, empty=()
)


def matching(q: str | None, labels: Sequence[str], now: datetime) -> list[Rule]:
    """The live rules a text query ``q`` on the indexes ``labels`` matches, oldest first."""
    if not q:
        return []
    rules = _copy.get()
    if not rules:
        return []
    terms = get_analyzer().terms(q)
    return [r for r in rules if r.live(now) and any(map(r.applies_to, labels)) and r.matches(terms)]


def forget() -> None:
    """The next search reads the rules (writers in this process call it after saving)."""
    _copy.forget()
