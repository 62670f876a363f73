"""What ``search()`` returns: ``SearchResults`` with one ``SearchHit`` per result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import models

RETRIEVERS = ("bm25", "vector")  # every result reports both signals; null where one did not retrieve it


@dataclass
class SearchHit:
    """One result: the model instance, its fused score and each signal's score and rank."""

    object: models.Model
    id: Any
    type: str
    score: float
    scores: dict[str, float | None]
    ranks: dict[str, int | None]
    fields: dict[str, Any]
    explain: dict[str, Any] | None = None
    highlights: dict[str, str] | None = None  # with highlight: field -> HTML, the query's terms in <mark>


@dataclass(frozen=True)
class Total:
    """How many products the query matched (Elasticsearch's ``hits.total``): ``value`` exactly when
    ``relation`` is "eq", at least ``value`` when it is "gte" (docs/api.md, *Totals and pages*)."""

    value: int
    relation: str = "eq"  # "eq" or "gte"

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "relation": self.relation}


@dataclass
class SearchResults:
    query: dict[str, Any]
    results: list[SearchHit]
    facets: dict[str, list[dict[str, Any]]]
    took_ms: float
    warnings: list[str] = field(default_factory=list)
    total: Total = field(default_factory=lambda: Total(0))

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)
