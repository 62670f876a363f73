"""Parse and validate a search request into a ``SearchQuery``; every mistake is an InvalidQuery."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from catalog_search import conf
from catalog_search.exceptions import InvalidFilter, InvalidQuery
from catalog_search.registry import RANGE_LOOKUPS, SearchIndex, indexes_for, jsonable, parse_bool

MODES = ("hybrid", "bm25", "vector")
FUSIONS = ("rrf", "weighted")


@dataclass(frozen=True)
class Filter:
    """One validated filter clause: ``field__lookup`` with its parsed value(s)."""

    field: str
    lookup: str  # "exact" (values are OR-ed), "gte", "lte", "gt", "lt"
    values: tuple[Any, ...]

    @property
    def key(self) -> str:
        return self.field if self.lookup == "exact" else f"{self.field}__{self.lookup}"


@dataclass(frozen=True)
class Sort:
    """A sort on a declared sort field (``SearchIndex.sort_fields``); None on the query is relevance."""

    field: str
    descending: bool

    @property
    def key(self) -> str:
        return f"-{self.field}" if self.descending else self.field


@dataclass
class SearchQuery:
    q: str | None
    image: Any | None  # a decoded RGB PIL image
    filters: list[Filter]
    k: int
    offset: int
    mode: str
    fusion: str
    alpha: float
    explain: bool
    indexes: list[SearchIndex]
    understand: bool = True  # query understanding (retrieval/understanding/)
    hard: frozenset[str] = frozenset()  # understood fields applied as filters, not boosts ("all": every one)
    drop: frozenset[str] = frozenset()  # understood parts left out: field names, the price field, "spelling"
    # Per index: the filters it understands. An index missing a filtered field is not searched.
    index_filters: dict[str, list[Filter]] = field(default_factory=dict)
    # Per index: the request's own clauses (the same objects as in index_filters; understood ones join those
    # later): what disjunctive facets leave out of their own counts.
    requested: dict[str, list[Filter]] = field(default_factory=dict)
    sort: Sort | None = None  # None: by relevance
    highlight: bool = False  # each result's displayed text fields with the query's terms marked (highlight.py)
    ranking: float = 1.0  # multiplies the indexes' business ranking weights (ranking.py); 0: relevance alone

    def filters_as_dict(self) -> dict[str, list[Any]]:
        return filters_echo(self.filters)


def filters_echo(filters: list[Filter]) -> dict[str, list[Any]]:
    """The parsed filters as the response's ``query.filters``: ``{"category": ["bags"], "price__lte": [50]}``."""
    out: dict[str, list[Any]] = {}
    for f in filters:
        out.setdefault(f.key, []).extend(jsonable(v) for v in f.values)
    return out


def _int(name: str, value: Any, *, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidQuery(f"'{name}' must be an integer between {low} and {high}.")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidQuery(f"'{name}' must be an integer between {low} and {high}, got {str(value)[:30]!r}.") from None
    if not low <= number <= high:
        raise InvalidQuery(f"'{name}' must be between {low} and {high}, got {number}.")
    return number


MAX_RANKING = 10.0


def _ranking(value: Any) -> float:
    """The business ranking multiplier: 0 (relevance alone) to 10, default 1 (the declared weights)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 1.0
    message = f"'ranking' must be a number from 0 to {MAX_RANKING:g} (1: the declared weights, 0: none), got {str(value)[:30]!r}."
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise InvalidQuery(message) from None
    if isinstance(value, bool) or not math.isfinite(scale) or not 0.0 <= scale <= MAX_RANKING:
        raise InvalidQuery(message)
    return scale


def _alpha(value: Any) -> float:
    if value is None or value == "":
        return conf.settings().DEFAULT_ALPHA
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        raise InvalidQuery(f"'alpha' must be a number between 0 and 1, got {str(value)[:30]!r}.") from None
    if not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise InvalidQuery(f"'alpha' must be a number between 0 and 1, got {str(value)[:30]!r}.")
    return alpha


def _choice(name: str, value: Any, choices: tuple[str, ...], default: str | None = None) -> str:
    value = (default or choices[0]) if value in (None, "") else str(value)
    if value not in choices:
        raise InvalidQuery(f"'{name}' must be one of {', '.join(choices)}, got {value[:30]!r}.")
    return value


def _split_key(key: str) -> tuple[str, str]:
    name, _, op = key.rpartition("__")
    if name and op in RANGE_LOOKUPS:
        return name, op
    return key, "exact"


def parse_filters(
    filters: Mapping[str, Any] | None, indexes: list[SearchIndex]
) -> tuple[list[Filter], dict[str, list[Filter]]]:
    """Validate ``{"category": ["bags"], "price__gte": 10}`` against the indexes' declarations."""
    parsed: list[Filter] = []
    per_index: dict[str, list[Filter]] = {index.label: [] for index in indexes}
    for key, raw in (filters or {}).items():
        if not isinstance(key, str):
            raise InvalidFilter(f"Filter names must be strings, got {key!r}.")
        name, lookup = _split_key(key)
        declaring = [index for index in indexes if name in index.filters]
        if not declaring:
            declared = sorted({f for index in indexes for f in index.filters})
            raise InvalidFilter(f"Unknown filter {key[:60]!r}. Filterable fields: {', '.join(declared) or 'none'}.")
        values = list(raw) if isinstance(raw, list | tuple | set | frozenset) else [raw]
        if not values:
            raise InvalidFilter(f"Filter {key!r} has no value.")
        if lookup != "exact" and len(values) > 1:
            raise InvalidFilter(f"Filter {key!r} takes a single value.")
        if len(values) > 100:
            raise InvalidFilter(f"Filter {key!r} takes at most 100 values.")
        for index in declaring:
            clause = Filter(name, lookup, tuple(index.parse_filter_value(name, lookup, v) for v in values))
            per_index[index.label].append(clause)
        parsed.append(per_index[declaring[0].label][-1])
    for index in indexes:
        if len(per_index[index.label]) < len(parsed):
            per_index.pop(index.label)  # lacks a filtered field: nothing of it can match
    return parsed, per_index


def understood_names(indexes: list[SearchIndex]) -> list[str]:
    """What ``hard`` and ``drop`` may name: the indexes' query fields and price fields."""
    names = [f.name for index in indexes for f in index.understood_fields]
    names += [index.price_field for index in indexes if index.price_field]
    return list(dict.fromkeys(names))


def _names(name: str, value: Any, allowed: list[str]) -> frozenset[str]:
    """A comma-separated list (or an iterable) of ``allowed`` names; InvalidQuery naming them otherwise."""
    if value is None or value == "":
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    if len(items) > 50 or not all(isinstance(item, str) for item in items):
        raise InvalidQuery(f"'{name}' takes a comma-separated list of: {', '.join(allowed) or 'none'}.")
    names = frozenset(item.strip() for item in items if item.strip())
    wrong = sorted(names - set(allowed))
    if wrong:
        raise InvalidQuery(f"'{name}' cannot name {wrong[0][:40]!r}; it takes: {', '.join(allowed) or 'none'}.")
    return names


def sortable(indexes: list[SearchIndex]) -> list[str]:
    """The fields a query over ``indexes`` may sort by: those any of them declares."""
    return sorted({name for index in indexes for name in index.sort_fields})


def _sort(value: Any, indexes: list[SearchIndex]) -> Sort | None:
    """``relevance`` (None), a declared sort field (ascending) or ``-field`` (descending)."""
    if value is None or value == "" or value == "relevance":
        return None
    allowed = sortable(indexes)
    hint = f"Sort by: relevance, {', '.join(f'{n}, -{n}' for n in allowed)}." if allowed else "Only relevance."
    if not isinstance(value, str):
        raise InvalidQuery(f"'sort' must be a string. {hint}", code="invalid_sort")
    name = value.strip()
    descending = name.startswith("-")
    name = name[1:] if descending else name
    if name not in allowed:
        raise InvalidQuery(f"Cannot sort by {value[:60]!r}. {hint}", code="invalid_sort")
    return Sort(name, descending)


def _flag(name: str, value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    flag = parse_bool(value)
    if flag is None:
        raise InvalidQuery(f"'{name}' must be 1 or 0, got {str(value)[:30]!r}.")
    return flag


def build_query(
    q: str | None = None,
    image: Any = None,
    *,
    filters: Mapping[str, Any] | None = None,
    k: Any = 20,
    offset: Any = 0,
    mode: Any = "hybrid",
    fusion: Any = None,
    alpha: Any = None,
    explain: bool = False,
    models: list[str] | None = None,
    understand: Any = None,
    hard: Any = None,
    drop: Any = None,
    sort: Any = None,
    highlight: Any = None,
    ranking: Any = None,
) -> SearchQuery:
    """Validate every parameter; ``image`` may be bytes, a file object or a PIL image."""
    if q is not None and not isinstance(q, str):
        raise InvalidQuery("'q' must be a string.")
    q = (q or "").strip() or None
    if q is not None:
        if len(q) > conf.settings().MAX_QUERY_LENGTH:
            raise InvalidQuery(f"'q' is longer than {conf.settings().MAX_QUERY_LENGTH} characters.")
        if "\x00" in q:
            raise InvalidQuery("'q' contains a null byte.")
    if q is None and image is None:
        raise InvalidQuery("Send a text query 'q', an image, or both.", code="empty_query")
    mode = _choice("mode", mode, MODES)
    if mode == "bm25" and q is None:
        raise InvalidQuery("mode=bm25 needs a text query 'q'.")
    try:
        indexes = indexes_for(models or None)
    except LookupError as exc:
        raise InvalidQuery(str(exc)) from None
    parsed, per_index = parse_filters(filters, indexes)
    names = understood_names(indexes)
    return SearchQuery(
        q=q,
        image=_decode(image),
        filters=parsed,
        k=_int("k", k, low=1, high=conf.settings().MAX_K, default=20),
        offset=_int("offset", offset, low=0, high=conf.settings().MAX_OFFSET, default=0),
        mode=mode,
        fusion=_choice("fusion", fusion, FUSIONS, conf.settings().DEFAULT_FUSION),
        alpha=_alpha(alpha),
        explain=bool(explain),
        indexes=[i for i in indexes if i.label in per_index],
        index_filters=per_index,
        requested={label: list(clauses) for label, clauses in per_index.items()},
        sort=_sort(sort, indexes),
        understand=_flag("understand", understand, conf.settings().QUERY_UNDERSTANDING),
        hard=_names("hard", hard, [*names, "all"]),
        drop=_names("drop", drop, [*names, "spelling"]),
        highlight=_flag("highlight", highlight, False),
        ranking=_ranking(ranking),
    )


def _decode(image: bytes | IO[bytes] | Any | None) -> Any:
    if image is None:
        return None
    from PIL import Image

    from catalog_search.encoding.images import open_image, to_rgb

    if isinstance(image, Image.Image):
        return to_rgb(image)
    return open_image(image)
