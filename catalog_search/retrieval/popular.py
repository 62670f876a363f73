"""Popular past queries for suggestions (search analytics' ``SearchEvent`` rows): what shoppers searched
for often, found something, and more than one of them did.

Each process keeps the ``POPULAR_QUERIES`` most searched text queries of the last
``SUGGEST_POPULAR_DAYS`` days whose searches found results and that at least
``SUGGEST_POPULAR_MIN_VISITORS`` browsers searched (one shopper's query is never shown to another), read
again every ``REFRESH_SECONDS``; a keystroke looks its typed text up in the sorted list (a bisection).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from catalog_search import conf, databases
from catalog_search.copies import ProcessCopy
from catalog_search.models import SearchEvent

POPULAR_QUERIES = 5000
REFRESH_SECONDS = 300.0


@dataclass(frozen=True)
class Popular:
    """A popular query: its text (folded, single spaces), how many searches, the most results one found."""

    text: str
    searches: int
    results: int


def _read() -> tuple[list[str], dict[str, Popular]]:
    settings = conf.settings()
    since = timezone.now() - timedelta(days=settings.SUGGEST_POPULAR_DAYS)
    rows = (
        databases.using(SearchEvent.objects)
        .filter(created_at__gte=since, kind="text", results__gt=0)
        .exclude(query="")
        .values("query")
        .annotate(
            searches=Count("pk"),
            visitors=Count("visitor", distinct=True, filter=~Q(visitor="")),
            results=Max("results"),
        )
        .filter(visitors__gte=settings.SUGGEST_POPULAR_MIN_VISITORS)
        .order_by("-searches", "query")[:POPULAR_QUERIES]
    )
    found = {r["query"]: Popular(r["query"], r["searches"], r["results"]) for r in rows}
    return sorted(found), found


_copy: ProcessCopy[tuple[list[str], dict[str, Popular]]] = ProcessCopy(
    "popular queries",
    stamp=lambda: int(time.time() // REFRESH_SECONDS),  # a new period: read again
    read=_read,
    refresh=lambda: 1.0,
    empty=([], {}),
)


def starting_with(typed: str, limit: int) -> list[Popular]:
    """The most searched popular queries that begin with ``typed`` (whole words before its last one,
    which may be a word's start), ``typed`` itself left out."""
    if not conf.settings().SUGGEST_POPULAR or not typed:
        return []
    texts, found = _copy.get()
    start = bisect.bisect_left(texts, typed)
    matching = []
    for text in texts[start:]:
        if not text.startswith(typed):
            break
        if text != typed:
            matching.append(found[text])
    return sorted(matching, key=lambda p: (-p.searches, p.text))[:limit]


def forget() -> None:
    """Read the queries again at the next keystroke (tests; a purge)."""
    _copy.forget()
