"""Embeddings: encoding documents with an encoder, writing their vectors, and each encoder's HNSW indexes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from catalog_search import conf
from catalog_search.encoding.encoders import Encoder
from catalog_search.indexing.documents import Doc
from catalog_search.models import Encoder as EncoderRow
from catalog_search.sql import vector_literal


@dataclass
class Vectors:
    """One encoder's vectors for some docs (image None where a doc has no usable image)."""

    encoder_row: EncoderRow
    object_ids: list[str]
    image: list[np.ndarray | None]
    text: list[np.ndarray | None]


def encode_docs(docs: Sequence[Doc], encoder_row: EncoderRow, encoder: Encoder) -> Vectors:
    """Encode the docs' texts and decoded images in batches."""
    text = list(encoder.encode_texts([d.text for d in docs]))
    image: list[np.ndarray | None] = [None] * len(docs)
    with_image = [i for i, d in enumerate(docs) if d.image is not None]
    if with_image:
        encoded = encoder.encode_images([docs[i].image for i in with_image])
        for i, vector in zip(with_image, encoded, strict=True):
            image[i] = vector
    return Vectors(encoder_row, [d.object_id for d in docs], image, text)


def ensure_encoder(encoder: Encoder) -> EncoderRow:
    """The Encoder row for ``encoder``, created (with its HNSW indexes) on first use.
    The first encoder ever becomes active; later ones wait in 'building' for a switch."""
    row, created = EncoderRow.objects.get_or_create(
        identity=encoder.identity, defaults={"name": encoder.name, "dim": encoder.dim}
    )
    if created:
        ensure_vector_indexes(row)
    if row.state == EncoderRow.State.BUILDING and not EncoderRow.objects.filter(state="active").exists():
        with transaction.atomic():
            EncoderRow.objects.filter(pk=row.pk).update(state="active", activated_at=timezone.now())
        row.refresh_from_db()
    return row


# index name part -> (indexed column, rows): the image and text vectors, and the text vectors of rows
# without an image (the fallback lane of text queries, retrieval/vector.py).
HNSW_INDEXES = {
    "image": ("image", "image IS NOT NULL"),
    "text": ("text", "text IS NOT NULL"),
    "textonly": ("text", "text IS NOT NULL AND image IS NULL"),
}
NO_IMAGE_INDEX = "noimage"  # a btree over the rows without an image: the fallback lane's exact path


def vector_index_name(row: EncoderRow, name: str) -> str:
    return f"catalog_search_emb_{name}_e{row.pk}"


def ensure_vector_indexes(row: EncoderRow) -> None:
    """Partial HNSW (cosine) expression indexes on this encoder's vectors, and the no-image btree."""
    settings = conf.settings()
    with connection.cursor() as cursor:
        for name, (column, rows) in HNSW_INDEXES.items():
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {vector_index_name(row, name)} ON catalog_search_embedding "
                f"USING hnsw (({column}::vector({int(row.dim)})) vector_cosine_ops) "
                f"WITH (m = {settings.HNSW_M}, ef_construction = {settings.HNSW_EF_CONSTRUCTION}) "
                f"WHERE encoder_id = {int(row.pk)} AND {rows}"
            )
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {vector_index_name(row, NO_IMAGE_INDEX)} ON catalog_search_embedding "
            f"(content_type_id, object_id) WHERE encoder_id = {int(row.pk)} AND image IS NULL"
        )


def drop_vector_indexes(row: EncoderRow) -> None:
    with connection.cursor() as cursor:
        for name in (*HNSW_INDEXES, NO_IMAGE_INDEX):
            cursor.execute(f"DROP INDEX IF EXISTS {vector_index_name(row, name)}")


def write_vectors(cursor, ct: int, vectors: Vectors, doc_ids: dict[str, int]) -> None:
    """Upsert one encoder's vectors; ``doc_ids`` maps object id -> document id."""
    if not vectors.object_ids:
        return
    cursor.execute(
        "INSERT INTO catalog_search_embedding (document_id, encoder_id, content_type_id, object_id, image, text) "
        "SELECT d, %s, %s, o, i::vector, t::vector FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
        "AS x(d, o, i, t) ON CONFLICT (document_id, encoder_id) DO UPDATE SET image = EXCLUDED.image, "
        "text = EXCLUDED.text",
        [
            vectors.encoder_row.pk,
            ct,
            [doc_ids[oid] for oid in vectors.object_ids],
            vectors.object_ids,
            [vector_literal(v) for v in vectors.image],
            [vector_literal(v) for v in vectors.text],
        ],
    )
