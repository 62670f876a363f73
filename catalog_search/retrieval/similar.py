"""``similar(obj)``: the products nearest one product ("More like this"), by its stored vectors.

No encoder runs: the product's own vectors from the index are the query. A product with a photo is compared
by its image vector with the other products' image vectors; products without a photo join by their text
vector, calibrated onto the image scale (the fallback lane of retrieval/vector.py, as for text queries). A
product without a photo is compared by its text vector with every product's text vector. Filters apply
inside the nearest-neighbour search exactly as in ``search()`` (retrieval/filters.py), and the product
itself is never a result.

Every product is some distance away, so the matched set is a neighbourhood: the CANDIDATES nearest products
passing the filters (more when a page reaches deeper). Facets count it (multi-select as in search), and
``total`` is its size: exact when fewer pass the filters, else "at least" that many.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import DatabaseError, DataError, models

from catalog_search import conf, databases, replicas
from catalog_search.exceptions import IndexUnavailable, InvalidQuery, NotFound, NotIndexed
from catalog_search.models import Document, Embedding, OutboxEntry
from catalog_search.models import Encoder as EncoderRow
from catalog_search.registry import SearchIndex, get_index, get_index_by_label
from catalog_search.retrieval import facets, vector
from catalog_search.retrieval.filters import FilterPlan, plan
from catalog_search.retrieval.query import Filter, _flag, _int, filters_echo, parse_filters
from catalog_search.retrieval.results import SearchHit, SearchResults, Total

logger = logging.getLogger(__name__)

Answer = tuple[list[SearchHit], facets.Tally | None, Total]  # the page, the facets (if counted), the total


@dataclass(frozen=True)
class Source:
    """The product asked about: its index, key and stored vectors under the active encoder."""

    index: SearchIndex
    object_id: str
    encoder: EncoderRow
    image: np.ndarray | None
    text: np.ndarray | None

    @property
    def weights(self) -> dict[str, float]:
        return {"image": 1.0} if self.image is not None else {"text": 1.0}

    @property
    def vector(self) -> np.ndarray:
        return self.image if self.image is not None else self.text  # type: ignore[return-value]

    @property
    def fallback(self) -> str | None:
        """Products without a photo are reached by their text vector when the query is an image vector."""
        return "text" if self.image is not None else None


def similar(
    obj: models.Model,
    *,
    k: Any = 12,
    offset: Any = 0,
    filters: Mapping[str, Any] | None = None,
    facets: Any = True,
) -> SearchResults:
    """The ``k`` products nearest ``obj`` (a registered model's instance) that pass ``filters`` (as in
    ``search()``), nearest first, never ``obj`` itself. ``facets=False`` (a product page's "similar items")
    skips counting the facets (and, for a filter on a facet, the search without it; docs/benchmarks.md). Raises InvalidQuery for bad parameters, NotIndexed
    when ``obj`` has no vectors yet (the message says why) and IndexUnavailable when the database fails."""
    started = time.perf_counter()
    index = get_index(type(obj)) if isinstance(obj, models.Model) else None
    if index is None:
        raise InvalidQuery(f"similar() takes an instance of a registered model, got {type(obj).__name__}.")
    if obj.pk is None:
        raise InvalidQuery("similar() takes a saved instance (its pk is None).")
    settings = conf.settings()
    k = _int("k", k, low=1, high=settings.MAX_K, default=12)
    offset = _int("offset", offset, low=0, high=settings.MAX_OFFSET, default=0)
    counted = _flag("facets", facets, True)
    parsed, per_index = parse_filters(filters, [index])

    def answer() -> Answer:
        source = _source(index, obj)
        if index.label not in per_index:  # a filter names a field this index lacks: nothing matches
            return [], None, Total(0)
        return _run(source, per_index[index.label], k=k, offset=offset, counted=counted, settings=settings)

    try:
        hits, tally, total = replicas.run(answer)
    except DatabaseError as exc:
        logger.exception("catalog_search: database error during a similar-products search")
        raise IndexUnavailable(f"The search index is unavailable: {type(exc).__name__}") from exc
    echo = {"similar_to": {"type": index.label, "id": obj.pk}, "filters": filters_echo(parsed)}
    return SearchResults(
        query=echo,
        results=hits,
        facets=tally.facets if tally else {},
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        total=total,
    )


def _run(
    source: Source, filters: list[Filter], *, k: int, offset: int, counted: bool, settings: conf.Settings
) -> Answer:
    """The page, the facets over the neighbourhood (the ``depth`` nearest passing the filters; with
    DISJUNCTIVE_FACETS each selected facet counted over the neighbourhood without its own filter, as search
    counts it) and how many neighbours there are: exactly, when fewer than ``depth`` pass. Without facets
    the neighbourhood is read all the same: the photo-less products' calibration is over it, so the page
    is the same with or without."""
    index, cap = source.index, settings.EXACT_SEARCH_MAX_ROWS
    depth = max(settings.CANDIDATES, offset + 2 * k)
    neighbours = _neighbours(source, plan(index, filters, cap), limit=depth)
    hits = _resolve(index, neighbours[offset:], k, first_rank=offset + 1)
    total = Total(len(neighbours), "gte" if len(neighbours) >= depth else "eq")
    if not counted:
        return hits, None, total
    own = facets.own_clauses(index, filters) if settings.DISJUNCTIVE_FACETS else {}
    ids = [hit.object_id for hit in neighbours]
    for clauses in own.values():
        others = [c for c in filters if not any(c is o for o in clauses)]
        ids += [hit.object_id for hit in _neighbours(source, plan(index, others, cap), limit=depth)]
    tally = facets.tally(
        [index],
        {index.label: filters},
        matches=None,
        vector_ids={index.label: list(dict.fromkeys(ids))},
        own={index.label: own},
    )
    return hits, tally, total


def similar_by_key(label: str, object_id: str, **kwargs: Any) -> SearchResults:
    """``similar()`` of the object ``object_id`` of the index ``label`` ("shop.product"), looked up in the
    index's queryset (what search could show): NotFound for an unknown index or object."""
    index = get_index_by_label(label)
    if index is None:
        raise NotFound(f"No search index {label[:60]!r}.")
    try:
        key = index.model._meta.pk.to_python(object_id)
    except ValidationError:  # not a key this model can have ("abc" for an integer key)
        raise NotFound(f"No {label} with id {object_id[:60]!r}.") from None
    try:
        obj = replicas.run(lambda: databases.using(index.get_queryset()).filter(pk=key).first())
    except DataError:  # a key the column's type cannot hold
        obj = None
    except DatabaseError as exc:
        raise IndexUnavailable(f"The search index is unavailable: {type(exc).__name__}") from exc
    if obj is None:
        raise NotFound(f"No {label} with id {object_id[:60]!r}.")
    return similar(obj, **kwargs)


def _source(index: SearchIndex, obj: models.Model) -> Source:
    encoder = databases.using(EncoderRow.objects).filter(state=EncoderRow.State.ACTIVE).first()
    if encoder is None:
        raise NotIndexed("No embeddings have been indexed yet; run a reindex first.")
    oid = str(obj.pk)
    row = (
        databases.using(Embedding.objects)
        .filter(encoder=encoder, content_type=index.content_type, object_id=oid)
        .values_list("image", "text")
        .first()
    )
    if row is None or (row[0] is None and row[1] is None):
        raise NotIndexed(_why_not_indexed(index, oid))
    image, text = (None if v is None else np.asarray(v, dtype=np.float32) for v in row)
    return Source(index, oid, encoder, image, text)


def _why_not_indexed(index: SearchIndex, oid: str) -> str:
    """The reason a product has no vectors, for the 409's message."""
    name = f"{index.label} {oid}"
    document = databases.using(Document.objects).filter(content_type=index.content_type, object_id=oid).first()
    if document is not None and document.error:
        return f"{name} is not indexed: its last indexing attempt failed ({document.error[:200]})."
    if databases.using(OutboxEntry.objects).filter(content_type=index.content_type, object_id=oid).exists():
        return f"{name} is not indexed yet: it is queued for the indexing worker."
    if not databases.using(index.get_queryset()).filter(pk=index.model._meta.pk.to_python(oid)).exists():
        return f"{name} is not indexed: the index's get_queryset() leaves it out."
    return f"{name} is not indexed; reindex it (manage.py catalog_search reindex)."


def _neighbours(source: Source, scope: FilterPlan, *, limit: int) -> list[vector.Hit]:
    """The ``limit`` nearest products passing ``scope``, without the source (one more is fetched for it)."""
    hits = vector.search(
        source.vector,
        encoder_id=source.encoder.pk,
        dim=source.encoder.dim,
        content_type_id=source.index.content_type.pk,
        weights=source.weights,
        restriction=scope.restriction,
        limit=limit + 1,
        passing=scope.passing,
        count=scope.count,
        all_similarities=False,
        fallback=source.fallback,
    )
    return [hit for hit in hits if hit.object_id != source.object_id][:limit]


def _resolve(index: SearchIndex, neighbours: list[vector.Hit], k: int, *, first_rank: int) -> list[SearchHit]:
    """The first ``k`` neighbours whose objects still exist, as hits: one query for the page, one more for
    as many stand-ins only when some of the page's objects were deleted since indexing (rare)."""
    objects = _objects(index, neighbours[:k])
    if len(objects) < min(k, len(neighbours)):
        objects.update(_objects(index, neighbours[k : 2 * k]))
    hits: list[SearchHit] = []
    for rank, hit in enumerate(neighbours, start=first_rank):
        obj = objects.get(hit.object_id)
        if obj is None:  # deleted or left the queryset since it was indexed
            continue
        hits.append(
            SearchHit(
                object=obj,
                id=obj.pk,
                type=index.label,
                score=hit.score,
                scores={"bm25": None, "vector": hit.score},
                ranks={"bm25": None, "vector": rank},
                fields=index.display_values(obj),
            )
        )
        if len(hits) == k:
            break
    return hits


def _objects(index: SearchIndex, neighbours: list[vector.Hit]) -> dict[str, models.Model]:
    if not neighbours:
        return {}
    pk = index.model._meta.pk
    wanted = [pk.to_python(hit.object_id) for hit in neighbours]
    return {str(obj.pk): obj for obj in databases.using(index.get_queryset()).filter(pk__in=wanted)}
