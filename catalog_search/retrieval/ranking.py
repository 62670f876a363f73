"""Stage 4a: business ranking. The fields a ``SearchIndex`` declares as ``ranking_signals`` (popularity,
rating, margin, in stock) join the fused relevance score, before the staff's boosts and the understood
values' tiers:

    score' = score + spread * sum_i weight_i * value_i

``value_i`` is the candidate's field value scaled to 0..1 over the candidates (min-max; True is 1, False
and no value 0), and ``spread`` the difference between the best and the worst fused score of the candidates,
so a weight is a share of the relevance at stake whatever the fusion (RRF's scores are a hundred times
smaller than weighted fusion's): 0.1 lets the most popular candidate gain a tenth of the distance from the
least to the most relevant one. The understood values' tiers still come first ("crimson tote": totes before
popular keyboards); within them, the order moves. ``ranking=0`` (a request parameter; ``evaluate --tune``
sweeps it as a multiplier of the weights) asks for relevance alone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from catalog_search.registry import RankingSignal, SearchIndex
from catalog_search.retrieval.context import Search
from catalog_search.retrieval.field_rows import field_rows
from catalog_search.retrieval.fusion import Fused


def ranked(search: Search, items: list[Fused]) -> list[Fused]:
    """``items`` with the ranking signals of their indexes added to their scores, ordered again."""
    scale = search.query.ranking
    if not items or scale == 0:
        return items
    spread = max(i.score for i in items) - min(i.score for i in items)
    spread = spread or max(abs(items[0].score), 1e-9)  # every score equal: the signals order them
    changed = False
    for index in search.query.indexes:
        signals = index.ranking
        own = [item for item in items if search.found.where[item.document_id][0] is index]
        if signals and own:
            _add(search, index, signals, own, spread * scale)
            changed = True
    return sorted(items, key=lambda item: (-item.score, item.document_id)) if changed else items


def _add(search: Search, index: SearchIndex, signals: list[RankingSignal], own: list[Fused], spread: float) -> None:
    names = [s.name for s in signals]
    oids = [search.found.where[item.document_id][1] for item in own]
    values = {str(row[0]): row[1:] for row in field_rows(index, names, oids)}
    columns = list(zip(*[values.get(oid, (None,) * len(names)) for oid in oids], strict=True))
    scaled = [_scaled(column) for column in columns]
    for n, item in enumerate(own):
        added = spread * sum(signal.weight * scaled[j][n] for j, signal in enumerate(signals))
        item.score += added
        item.contributions["ranking"] = round(added, 6)


def _number(value: Any) -> float | None:
    """A field's value as a number: True 1, a date its day, a date and time its timestamp."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return float(value.toordinal())
    return float(value)


def _scaled(values: tuple[Any, ...]) -> list[float]:
    """Min-max over the candidates: the highest 1, the lowest and no value 0 (True 1, False 0; newer dates
    higher)."""
    numbers = [_number(v) for v in values]
    present = [v for v in numbers if v is not None]
    if not present:
        return [0.0] * len(values)
    low, high = min(present), max(present)
    return [0.0 if v is None or high == low else (v - low) / (high - low) for v in numbers]
