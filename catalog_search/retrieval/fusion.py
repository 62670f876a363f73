"""Merge ranked candidate lists from several signals into one ranking.

- RRF (default): ``score(d) = sum_s 1 / (k + rank_s(d))`` over the signals that retrieved d
  (Cormack et al. 2009). Needs no score calibration between BM25 and cosine similarity. ``k`` is
  ``CATALOG_SEARCH['RRF_K']``, the paper's 60 by default. A smaller k trusts each signal's first ranks
  more: right for an encoder whose first ranks are reliable (the demo shop uses 5, tuned with
  ``catalog_search evaluate --tune``, docs/relevance.md), wrong for a weak one.
- Weighted: each signal's scores are min-max normalized over its own candidate list to [0, 1]
  (a signal that did not retrieve d contributes 0), then ``alpha * vector + (1 - alpha) * bm25``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Fused:
    document_id: int
    score: float
    scores: dict[str, float | None] = field(default_factory=dict)
    ranks: dict[str, int | None] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    tier: int = 0  # boost.py: from the understood values it has (0: none, or nothing was understood)
    matched: dict = field(default_factory=dict)  # boost.py: which understood values it has
    within: dict = field(default_factory=dict)  # photo_order.py: what ordered it within its tier
    rules: list[dict] = field(default_factory=list)  # rules.py: what the staff's query rules did to it


def _collect(signals: dict[str, list[tuple[int, float]]]) -> dict[int, Fused]:
    fused: dict[int, Fused] = {}
    for name, hits in signals.items():
        for rank, (key, score) in enumerate(hits, start=1):
            item = fused.setdefault(key, Fused(key, 0.0, dict.fromkeys(signals), dict.fromkeys(signals)))
            item.scores[name] = score
            item.ranks[name] = rank
    return fused


def _ordered(fused: dict[int, Fused]) -> list[Fused]:
    return sorted(fused.values(), key=lambda f: (-f.score, f.document_id))


def rrf(signals: dict[str, list[tuple[int, float]]], k: int = 60) -> list[Fused]:
    """Reciprocal rank fusion of ``signals`` (name -> [(key, score)] best first)."""
    fused = _collect(signals)
    for item in fused.values():
        for name, rank in item.ranks.items():
            if rank is not None:
                item.contributions[name] = 1.0 / (k + rank)
        item.score = sum(item.contributions.values())
    return _ordered(fused)


def min_max(scores: list[float]) -> list[float]:
    """Scale to [0, 1]; a list of equal scores maps to 1.0 (every item is the best retrieved)."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def weighted(signals: dict[str, list[tuple[int, float]]], weights: dict[str, float]) -> list[Fused]:
    """Weighted sum of min-max normalized scores; ``weights`` maps signal name -> weight."""
    fused = _collect(signals)
    for name, hits in signals.items():
        for (key, _score), normalized in zip(hits, min_max([s for _, s in hits]), strict=True):
            fused[key].contributions[name] = weights.get(name, 0.0) * normalized
    for item in fused.values():
        item.score = sum(item.contributions.values())
    return _ordered(fused)
