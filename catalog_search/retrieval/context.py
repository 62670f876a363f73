"""One search as it runs: the query, the settings read once, and what each stage has found so far.

``search()`` (engine.py) makes a ``Search`` and hands it through the stages, each of which reads what the
earlier ones left and adds its own part: understand (terms, query vectors), the keyword and vector
signals (candidates, matches, facet counts made along the way), fusion, facets, resolve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from catalog_search import conf
from catalog_search import rules as staff_rules
from catalog_search.encoding.encoders import Encoder
from catalog_search.models import Encoder as EncoderRow
from catalog_search.registry import SearchIndex
from catalog_search.retrieval import bm25, facets
from catalog_search.retrieval.query import SearchQuery


@dataclass
class Candidates:
    """What the signals retrieved, over every searched index."""

    bm25: list[tuple[int, float]] = field(default_factory=list)  # (document id, score)
    vector: list[tuple[int, float]] = field(default_factory=list)
    where: dict[int, tuple[SearchIndex, str]] = field(default_factory=dict)  # document id -> (index, object id)
    similarities: dict[int, dict[str, float]] = field(default_factory=dict)  # document id -> column -> cosine
    vector_ids: dict[str, list[str]] = field(default_factory=dict)  # per index label: the vector candidates
    vector_documents: dict[str, list[int]] = field(default_factory=dict)  # and their document ids
    neighbour_matches: dict[str, list[str]] = field(default_factory=dict)  # composed: keyword matches' ids
    bm25_scores: dict[int, float] = field(default_factory=dict)  # composed: the keyword matches' BM25 scores
    # composed: per index label, the photo's neighbours (object id -> similarity to the photo), nearest first
    neighbourhood: dict[str, dict[str, float]] = field(default_factory=dict)
    # composed: document id -> similarity to the photo alone, of the neighbours and of keyword_signal._asked's
    # products (photo_order.py orders a tier by it)
    photo_similarity: dict[int, float] = field(default_factory=dict)
    # Disjunctive facets: per index label, the candidates of the searches without a selected facet's own
    # filter that the query's own candidates do not have (disjunctive.py)
    unselected: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # (document id, object id)
    # Understanding on: per index label, the values of the candidates whose shop rows the facet counts read
    # (facets.Listed), so the re-rank by understood values tests them without a statement (boost.py)
    listed: dict[str, facets.Listed] = field(default_factory=dict)

    def matched_ids(self, composed: bool) -> dict[str, list[str]]:
        """Object ids in the facets' matched set besides BM25's matches: the vector candidates, and for a
        composed query the keyword matches among the photo's neighbours (its keyword signal searched no
        others)."""
        if not composed:
            return self.vector_ids
        labels = self.vector_ids.keys() | self.neighbour_matches.keys()
        return {
            label: list(dict.fromkeys(self.vector_ids.get(label, []) + self.neighbour_matches.get(label, [])))
            for label in labels
        }


@dataclass
class Part:
    """One understood part of the query: a field value (a boost, or with ``hard`` a filter) or a price bound."""

    field: str
    lookup: str  # "exact" or "gte"/"lte"
    value: Any
    words: str
    source: str  # "value", "synonym", "color", "wordnet", "photo", "price"
    hard: bool

    @property
    def key(self) -> str:
        return self.field if self.lookup == "exact" else f"{self.field}__{self.lookup}"

    def shown(self) -> dict[str, Any]:
        applied = "filter" if self.hard else "boost"
        return {"field": self.field, "lookup": self.lookup, "value": self.value, "words": self.words,
                "source": self.source, "applied": applied}  # fmt: skip


@dataclass
class Search:
    """The per-search context every stage reads and adds to."""

    query: SearchQuery
    settings: conf.Settings
    rrf_k: int
    depth: int  # each signal's candidates per index: max(CANDIDATES, offset + k); sorted by a field CANDIDATES
    presence: bm25.Presence  # which terms the searched indexes have: looked up once for every stage
    # understand: what the query says (values, price bounds, corrections), keyword terms, expansion, the
    # encoder and the query vectors
    understood: list[Part] = field(default_factory=list)
    corrected: dict[str, Any] = field(default_factory=dict)  # {"q": ..., "words": {typed: corrected}}
    unexplained: list[str] = field(default_factory=list)  # query words that name no value (boost.results_kind)
    text: str | None = None  # q as the signals search it: price phrases out, typo corrections in
    terms: list[str] = field(default_factory=list)
    groups: dict[str, int] | None = None  # term -> the query word it stands for (bm25.match)
    vector_text: str | None = None  # the text the query vector encodes: q, with the words expansion added
    expanded: dict[str, list[str]] = field(default_factory=dict)  # query word -> catalog words searched too
    synonyms: dict[str, list[str]] = field(default_factory=dict)  # words typed -> the staff's synonyms searched
    expansion_explained: dict[str, list[dict]] = field(default_factory=dict)  # with explain: why each word
    encoder: tuple[EncoderRow, Encoder] | None = None  # the active encoder, looked up once
    query_vector: np.ndarray | None = None
    photo_vector: np.ndarray | None = None  # a photo + text query's photo alone
    warnings: list[str] = field(default_factory=list)
    # the signals
    found: Candidates = field(default_factory=Candidates)
    matches: dict[str, bm25.Match] = field(default_factory=dict)  # per index: the keyword signal's matches
    counted: dict[str, facets.Counted] = field(default_factory=dict)  # facet counts made with them
    signals: tuple[str, ...] = ()  # the signals fused
    # the staff's query rules the query matches (rules.py), and the (index label, object id) they hide
    rules: list[staff_rules.Rule] = field(default_factory=list)
    hidden: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def start(cls, query: SearchQuery, rrf_k: int | None = None) -> Search:
        settings = conf.settings()
        # Sorted by a field, pages are cut from one matched set, the same whatever the page: CANDIDATES.
        depth = settings.CANDIDATES if query.sort else max(settings.CANDIDATES, query.offset + query.k)
        presence = bm25.Presence([index.content_type.pk for index in query.indexes])
        return cls(query, settings, rrf_k or settings.RRF_K, depth, presence)

    @property
    def uses_keywords(self) -> bool:
        return self.query.mode in ("hybrid", "bm25") and self.query.q is not None

    @property
    def wants_vector(self) -> bool:
        return self.query.mode in ("hybrid", "vector") or self.query.image is not None

    @property
    def composed(self) -> bool:
        """A photo refined by words ("this, but in red"): the keyword signal searches the photo's neighbours."""
        return bool(self.terms) and self.photo_vector is not None

    @property
    def facets_over_matches(self) -> bool:
        return self.settings.FACETS_OVER != "results"

    def own(self, index: SearchIndex) -> facets.Own:
        """Disjunctive facets: the request's own clauses on each of ``index``'s facets that it filters."""
        if not self.settings.DISJUNCTIVE_FACETS:
            return {}
        return facets.own_clauses(index, self.query.requested.get(index.label, []))

    def boosts(self) -> dict[str, set[str]]:
        """field -> the values a soft understood part asks for."""
        out: dict[str, set[str]] = {}
        for part in self.understood:
            if not part.hard and part.lookup == "exact":
                out.setdefault(part.field, set()).add(part.value)
        return out

    def understood_echo(self) -> dict[str, Any]:
        """``{"product_type": ["handbag"], "color": ["red"], "price__lte": 50}``."""
        out: dict[str, Any] = {}
        for part in self.understood:
            if part.lookup == "exact":
                out.setdefault(part.key, []).append(part.value)
            else:
                out[part.key] = part.value
        return out

    def echo(self) -> dict[str, Any]:
        """The response's ``query``: what was searched, as understood."""
        query = self.query
        return {
            "q": query.q,
            "mode": query.mode,
            "fusion": query.fusion,
            "filters": query.filters_as_dict(),
            **({"alpha": query.alpha} if query.fusion == "weighted" else {}),
            # A page can say "pocketbook: also searched handbag".
            **({"expanded": self.expanded} if self.expanded else {}),
            **({"synonyms": self.synonyms} if self.synonyms else {}),
            **({"rules": [{"id": r.id, "name": r.name} for r in self.rules]} if self.rules else {}),
            **({"redirect": redirect} if (redirect := next((r.redirect for r in self.rules if r.redirect), "")) else {}),
            **({"expansion": self.expansion_explained} if self.expansion_explained else {}),
            **({"understood": self.understood_echo(), "understanding": [p.shown() for p in self.understood]}
               if self.query.understand and self.query.q is not None else {}),
            **({"corrected": self.corrected} if self.corrected else {}),
            **({"sort": query.sort.key} if query.sort else {}),
        }  # fmt: skip
