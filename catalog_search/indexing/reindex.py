"""``catalog_search.reindex(objects)``: queue some objects for (re)indexing from your own code, for
example after a change the triggers cannot see (a file replaced in storage, data a property reads from
another service)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models, transaction

from catalog_search.indexing import outbox
from catalog_search.indexing.enqueue import send_later
from catalog_search.registry import SearchIndex, get_index


def reindex(objects: models.QuerySet | models.Model | Iterable[models.Model], *, force: bool = False) -> int:
    """Put ``objects`` (a queryset, an instance, or instances of registered models) in the outbox and
    enqueue them when the current transaction commits; return how many were queued. ``force``
    re-encodes even unchanged content. Objects outside their index's queryset are removed from it."""
    groups: dict[SearchIndex, list[str]] = {}
    if isinstance(objects, models.QuerySet):
        index = _index_of(objects.model)
        groups[index] = [str(pk) for pk in objects.order_by().values_list("pk", flat=True).iterator()]
    else:
        for obj in [objects] if isinstance(objects, models.Model) else objects:
            if obj.pk is None:
                raise ValueError(f"{obj!r} is not saved: only saved objects can be indexed")
            groups.setdefault(_index_of(type(obj)), []).append(str(obj.pk))
    for index, ids in groups.items():
        outbox.mark(index, ids, force=force)
        transaction.on_commit(lambda index=index, ids=ids: _enqueue(index, ids))
    return sum(len(ids) for ids in groups.values())


def _index_of(model: type[models.Model]) -> SearchIndex:
    index = get_index(model)
    if index is None:
        raise LookupError(f"{model._meta.label} is not registered with catalog_search")
    return index


def _enqueue(index: SearchIndex, ids: list[str]) -> None:
    outbox.mark_enqueued(index, ids)  # if the send fails, the sweep sends them once they are old
    send_later(index.label, ids)
