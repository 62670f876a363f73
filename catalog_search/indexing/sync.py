"""Indexing in the calling process, without the outbox and workers: ``reindex --sync``, tests, benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection, models, transaction

from catalog_search.encoding.encoders import Encoder
from catalog_search.indexing.documents import build_doc, remove_objects, write_documents
from catalog_search.indexing.vectors import encode_docs, ensure_encoder, write_vectors
from catalog_search.registry import SearchIndex


@dataclass
class IndexReport:
    indexed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # object_id -> reason
    removed: int = 0


def index_instances(index: SearchIndex, instances: Sequence[models.Model], encoder: Encoder) -> IndexReport:
    """Analyze, encode and store ``instances`` (all of one model). A product whose image cannot be
    read is still indexed for text, with the reason recorded in its ``error``; it never fails the batch."""
    report = IndexReport()
    docs = [build_doc(index, instance) for instance in instances]
    if not docs:
        return report
    encoded = encode_docs(docs, ensure_encoder(encoder), encoder)
    with transaction.atomic(), connection.cursor() as cursor:
        write_vectors(cursor, index.content_type.pk, encoded, write_documents(index, docs))
    for doc in docs:
        doc.image = None  # free the pixels
        if doc.error:
            report.failed[doc.object_id] = doc.error
    report.indexed = len(docs)
    return report


def reindex(
    index: SearchIndex,
    encoder: Encoder,
    *,
    batch_size: int = 64,
    object_ids: Iterable[object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Synchronously (re)index the index's queryset (or ``object_ids`` of it) in batches and remove
    documents of objects that left the queryset. Used by tests and ``reindex --sync``."""
    report = IndexReport()
    queryset = index.with_related(index.get_queryset()).order_by("pk")
    if object_ids is not None:
        wanted = [str(o) for o in object_ids]
        queryset = queryset.filter(pk__in=[index.model._meta.pk.to_python(o) for o in wanted])
    total = queryset.count()
    seen: set[str] = set()
    done = 0
    batch: list[models.Model] = []
    for instance in queryset.iterator(chunk_size=batch_size):
        batch.append(instance)
        if len(batch) >= batch_size:
            done += _run_batch(index, batch, encoder, report=report, seen=seen)
            if progress:
                progress(done, total)
    if batch:
        done += _run_batch(index, batch, encoder, report=report, seen=seen)
        if progress:
            progress(done, total)
    stale = _stale_object_ids(index, seen, None if object_ids is None else wanted)
    report.removed = remove_objects(index, stale)
    return report


def _run_batch(
    index: SearchIndex, batch: list[models.Model], encoder: Encoder, *, report: IndexReport, seen: set[str]
) -> int:
    result = index_instances(index, batch, encoder)
    report.indexed += result.indexed
    report.failed.update(result.failed)
    seen.update(str(i.pk) for i in batch)
    n = len(batch)
    batch.clear()
    return n


def _stale_object_ids(index: SearchIndex, seen: set[str], scope: list[str] | None) -> list[str]:
    with connection.cursor() as cursor:
        if scope is None:
            cursor.execute(
                "SELECT object_id FROM catalog_search_document WHERE content_type_id = %s",
                [index.content_type.pk],
            )
        else:
            cursor.execute(
                "SELECT object_id FROM catalog_search_document WHERE content_type_id = %s AND object_id = ANY(%s)",
                [index.content_type.pk, scope],
            )
        return [oid for (oid,) in cursor.fetchall() if oid not in seen]
