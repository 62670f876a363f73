"""Zero-downtime model switch.

When ``CATALOG_SEARCH['MODEL']`` names a different model than the active encoder, workers register
it as a *building* encoder. The sweep then puts every object in the outbox once; processing adds the
new encoder's vectors beside the old ones (unchanged objects are not re-encoded with the old model,
and objects saved meanwhile get vectors from both). Search keeps using the active encoder. When every
document has vectors from the new encoder, one transaction makes it active and retires the old one,
whose vectors and HNSW indexes are then removed.
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.utils import timezone

from catalog_search.encoding.encoders import get_encoder
from catalog_search.exceptions import EncoderUnavailable
from catalog_search.indexing import outbox
from catalog_search.indexing.enqueue import enqueue
from catalog_search.indexing.vectors import drop_vector_indexes, ensure_encoder
from catalog_search.models import Encoder as EncoderRow
from catalog_search.models import IndexRun
from catalog_search.registry import get_indexes

logger = logging.getLogger(__name__)


def missing_count(row: EncoderRow) -> int:
    """Documents that have no vectors from ``row`` yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM catalog_search_document d WHERE NOT EXISTS (SELECT 1 FROM catalog_search_embedding e "
            "WHERE e.document_id = d.id AND e.encoder_id = %s)",
            [row.pk],
        )
        return int(cursor.fetchone()[0])


def advance() -> str:
    """One step of a switch, run by the sweep; returns what it did."""
    try:
        configured = get_encoder()
    except EncoderUnavailable as exc:
        return f"configured model unavailable: {exc.message}"
    row = ensure_encoder(configured)
    if row.state == EncoderRow.State.RETIRED:  # switching back to an earlier model
        EncoderRow.objects.filter(pk=row.pk).update(state=EncoderRow.State.BUILDING, activated_at=None)
        row.refresh_from_db()
    if row.state == EncoderRow.State.ACTIVE:
        cleanup_retired()
        queued = 0
        for index in get_indexes():  # documents indexed while no model could be loaded
            ids = outbox.mark_missing_vectors(index, row)
            if ids:
                enqueue(index.label, ids)
                queued += len(ids)
        return f"queued {queued} documents without vectors" if queued else "none"
    if not IndexRun.objects.filter(kind=f"switch:{row.pk}").exists():
        for index in get_indexes():
            total = outbox.mark(index)
            IndexRun.objects.create(
                content_type=index.content_type, kind=f"switch:{row.pk}", total=total, requested_by="model switch"
            )
            enqueue(index.label, outbox.pending_ids(index))
        return f"building {row.identity}: queued every object"
    missing = missing_count(row)
    if missing:
        return f"building {row.identity}: {missing} documents to go"
    activate(row)
    cleanup_retired()
    return f"switched to {row.identity}"


def activate(row: EncoderRow) -> None:
    """Make ``row`` the encoder search uses, retiring the previous one, atomically."""
    with transaction.atomic():
        EncoderRow.objects.filter(state=EncoderRow.State.ACTIVE).exclude(pk=row.pk).update(
            state=EncoderRow.State.RETIRED
        )
        EncoderRow.objects.filter(pk=row.pk).update(state=EncoderRow.State.ACTIVE, activated_at=timezone.now())
    logger.info("catalog_search: switched search to encoder %s", row.identity)


def cleanup_retired() -> None:
    """Delete vectors and HNSW indexes of retired encoders."""
    for old in EncoderRow.objects.filter(state=EncoderRow.State.RETIRED):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM catalog_search_embedding WHERE encoder_id = %s", [old.pk])
        drop_vector_indexes(old)
        IndexRun.objects.filter(kind=f"switch:{old.pk}").delete()
        old.delete()
