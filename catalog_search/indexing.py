"""Build index documents from model instances and write them: BM25 postings and statistics, and
embeddings. Every write of a batch is one transaction, so a failure never leaves half an index.

BM25 statistics are maintained incrementally: (re)indexing a document subtracts its old terms from
the document frequencies and adds its new ones, under a row lock on the content type's corpus row
(which serializes concurrent writers of one model and so rules out deadlocks on shared terms).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import connection, models, transaction
from django.utils import timezone

from catalog_search import conf
from catalog_search.analysis import get_analyzer
from catalog_search.encoders import Encoder
from catalog_search.exceptions import InvalidImage
from catalog_search.images import open_image
from catalog_search.models import Encoder as EncoderRow
from catalog_search.registry import SearchIndex

logger = logging.getLogger(__name__)


@dataclass
class Doc:
    """What the index stores for one object."""

    object_id: str
    tf: dict[str, float]  # term -> weighted frequency
    length: float
    text: str
    image: object | None = None  # a decoded PIL image, when the index has one and it decoded
    error: str = ""
    content_hash: str = ""  # of the text fields and image name: unchanged content is not re-encoded


@dataclass
class Vectors:
    """One encoder's vectors for some docs (image None where a doc has no usable image)."""

    encoder_row: EncoderRow
    object_ids: list[str]
    image: list[np.ndarray | None]
    text: list[np.ndarray | None]


@dataclass
class IndexReport:
    indexed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # object_id -> reason
    removed: int = 0


def vector_literal(vector: np.ndarray | None) -> str | None:
    """pgvector's text form; 9 significant digits round-trip a float32 exactly."""
    if vector is None:
        return None
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"


def build_doc(index: SearchIndex, instance: models.Model, *, with_image: bool = True) -> Doc:
    """Analyze the text fields of ``instance`` and decode its image (errors recorded, not raised)."""
    analyzer = get_analyzer()
    tf: Counter[str] = Counter()
    length = 0.0
    for search_field in index.search_fields:
        terms = analyzer.terms(str(getattr(instance, search_field.name, "") or ""))
        for term in terms:
            tf[term] += float(search_field.weight)
        length += float(search_field.weight) * len(terms)
    image = getattr(instance, index.image_field, None) if index.image_field else None
    fingerprint = json.dumps(
        [[str(getattr(instance, f.name, "") or "") for f in index.search_fields], image.name if image else None]
    )
    doc = Doc(
        str(instance.pk),
        dict(tf),
        length,
        index.get_text(instance),
        content_hash=hashlib.sha256(fingerprint.encode()).hexdigest(),
    )
    if with_image and image:
        doc.image, doc.error = _load_image(image)
    return doc


def _load_image(file) -> tuple[object | None, str]:
    if not file:
        return None, ""
    try:
        with file.open("rb") as fh:
            return open_image(fh), ""
    except InvalidImage as exc:
        return None, f"image {file.name}: {exc.message}"
    except OSError as exc:  # missing file, storage error
        return None, f"image {file.name}: {exc.strerror or exc}"
    finally:
        file.close()


# Encoders --------------------------------------------------------------------------------------


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


def vector_index_name(row: EncoderRow, column: str) -> str:
    return f"catalog_search_emb_{column}_e{row.pk}"


def ensure_vector_indexes(row: EncoderRow) -> None:
    """Partial HNSW (cosine) expression indexes on this encoder's image and text vectors."""
    with connection.cursor() as cursor:
        for column in ("image", "text"):
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {vector_index_name(row, column)} ON catalog_search_embedding "
                f"USING hnsw (({column}::vector({int(row.dim)})) vector_cosine_ops) "
                f"WITH (m = {int(conf.get('HNSW_M'))}, ef_construction = {int(conf.get('HNSW_EF_CONSTRUCTION'))}) "
                f"WHERE encoder_id = {int(row.pk)} AND {column} IS NOT NULL"
            )


def drop_vector_indexes(row: EncoderRow) -> None:
    with connection.cursor() as cursor:
        for column in ("image", "text"):
            cursor.execute(f"DROP INDEX IF EXISTS {vector_index_name(row, column)}")


# Writing ---------------------------------------------------------------------------------------


def _lock_corpus(cursor, content_type_id: int) -> None:
    cursor.execute(
        "INSERT INTO catalog_search_corpusstat (content_type_id, doc_count, total_length) VALUES (%s, 0, 0) "
        "ON CONFLICT DO NOTHING",
        [content_type_id],
    )
    cursor.execute("SELECT 1 FROM catalog_search_corpusstat WHERE content_type_id = %s FOR UPDATE", [content_type_id])


def _drop_postings(cursor, content_type_id: int, old: list[tuple[int, str, float, list[str]]]) -> Counter:
    """Delete the postings of ``old`` documents (id, object_id, length, terms); return df decrements."""
    df_delta: Counter[str] = Counter()
    terms, doc_ids = [], []
    for doc_id, _oid, _length, doc_terms in old:
        for term in doc_terms:
            terms.append(term)
            doc_ids.append(doc_id)
            df_delta[term] -= 1
    if terms:
        # Delete by (term, document) pairs so the posting primary key is used, not a table scan.
        cursor.execute(
            "DELETE FROM catalog_search_posting p USING unnest(%s::text[], %s::bigint[]) AS x(term, doc) "
            "WHERE p.term = x.term AND p.document_id = x.doc",
            [terms, doc_ids],
        )
    return df_delta


def _apply_stats(cursor, content_type_id: int, df_delta: Counter, docs_delta: int, length_delta: float) -> None:
    changed = sorted(t for t, d in df_delta.items() if d)
    if changed:
        cursor.execute(
            "INSERT INTO catalog_search_termstat (content_type_id, term, df) "
            "SELECT %s, t, d FROM unnest(%s::text[], %s::int[]) AS x(t, d) "
            "ON CONFLICT (content_type_id, term) DO UPDATE SET df = catalog_search_termstat.df + EXCLUDED.df",
            [content_type_id, changed, [df_delta[t] for t in changed]],
        )
        cursor.execute(
            "DELETE FROM catalog_search_termstat WHERE content_type_id = %s AND term = ANY(%s) AND df <= 0",
            [content_type_id, changed],
        )
    cursor.execute(
        "UPDATE catalog_search_corpusstat SET doc_count = doc_count + %s, "
        "total_length = GREATEST(total_length + %s, 0) WHERE content_type_id = %s",
        [docs_delta, length_delta, content_type_id],
    )


def write_documents(index: SearchIndex, docs: Sequence[Doc], vectors: Sequence[Vectors] = ()) -> dict[str, int]:
    """Upsert ``docs`` and their vectors (one entry per encoder) in one transaction; return
    object_id -> document id."""
    if not docs:
        return {}
    ct = index.content_type.pk
    oids = [d.object_id for d in docs]
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_corpus(cursor, ct)
        cursor.execute(
            "SELECT id, object_id, length, terms FROM catalog_search_document "
            "WHERE content_type_id = %s AND object_id = ANY(%s) FOR UPDATE",
            [ct, oids],
        )
        old = cursor.fetchall()
        df_delta = _drop_postings(cursor, ct, old)
        for doc in docs:
            for term in doc.tf:
                df_delta[term] += 1
        cursor.execute(
            "INSERT INTO catalog_search_document "
            "(content_type_id, object_id, length, terms, content_hash, error, indexed_at) "
            "SELECT %s, o, l, ARRAY(SELECT jsonb_array_elements_text(t)), h, e, now() "
            "FROM unnest(%s::text[], %s::float8[], %s::jsonb[], %s::text[], %s::text[]) AS x(o, l, t, h, e) "
            "ON CONFLICT (content_type_id, object_id) DO UPDATE SET length = EXCLUDED.length, "
            "terms = EXCLUDED.terms, content_hash = EXCLUDED.content_hash, error = EXCLUDED.error, "
            "indexed_at = EXCLUDED.indexed_at RETURNING object_id, id",
            [
                ct,
                oids,
                [d.length for d in docs],
                [json.dumps(sorted(d.tf)) for d in docs],
                [d.content_hash for d in docs],
                [d.error for d in docs],
            ],
        )
        ids = dict(cursor.fetchall())
        post_terms, post_docs, post_tfs, post_oids, post_lengths = [], [], [], [], []
        for doc in docs:
            for term, tf in doc.tf.items():
                post_terms.append(term)
                post_docs.append(ids[doc.object_id])
                post_tfs.append(tf)
                post_oids.append(doc.object_id)
                post_lengths.append(doc.length)
        cursor.execute(
            "INSERT INTO catalog_search_posting (term, document_id, tf, content_type_id, object_id, length) "
            "SELECT t, d, f, %s, o, l FROM unnest(%s::text[], %s::bigint[], %s::float8[], %s::text[], %s::float8[]) "
            "AS x(t, d, f, o, l)",
            [ct, post_terms, post_docs, post_tfs, post_oids, post_lengths],
        )
        length_delta = sum(d.length for d in docs) - sum(row[2] for row in old)
        _apply_stats(cursor, ct, df_delta, len(docs) - len(old), length_delta)
        for entry in vectors:
            write_vectors(cursor, ct, entry, ids)
    return ids


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


def remove_objects(index: SearchIndex, object_ids: Iterable[object]) -> int:
    """Remove objects from the index (postings, statistics, vectors); return how many were indexed."""
    ct = index.content_type.pk
    oids = [str(o) for o in object_ids]
    if not oids:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_corpus(cursor, ct)
        cursor.execute(
            "SELECT id, object_id, length, terms FROM catalog_search_document "
            "WHERE content_type_id = %s AND object_id = ANY(%s) FOR UPDATE",
            [ct, oids],
        )
        old = cursor.fetchall()
        if not old:
            return 0
        df_delta = _drop_postings(cursor, ct, old)
        doc_ids = [row[0] for row in old]
        cursor.execute("DELETE FROM catalog_search_embedding WHERE document_id = ANY(%s)", [doc_ids])
        cursor.execute("DELETE FROM catalog_search_document WHERE id = ANY(%s)", [doc_ids])
        _apply_stats(cursor, ct, df_delta, -len(old), -sum(row[2] for row in old))
    return len(old)


# Encoding + writing ----------------------------------------------------------------------------


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


def index_instances(index: SearchIndex, instances: Sequence[models.Model], encoder: Encoder) -> IndexReport:
    """Analyze, encode and store ``instances`` (all of one model). A product whose image cannot be
    read is still indexed for text, with the reason recorded in its ``error``; it never fails the batch."""
    report = IndexReport()
    docs = [build_doc(index, instance) for instance in instances]
    if not docs:
        return report
    write_documents(index, docs, [encode_docs(docs, ensure_encoder(encoder), encoder)])
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
    queryset = index.get_queryset().order_by("pk")
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
            done += _run_batch(index, batch, encoder, report, seen)
            if progress:
                progress(done, total)
    if batch:
        done += _run_batch(index, batch, encoder, report, seen)
        if progress:
            progress(done, total)
    stale = _stale_object_ids(index, seen, None if object_ids is None else wanted)
    report.removed = remove_objects(index, stale)
    return report


def _run_batch(index, batch, encoder, report, seen) -> int:
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
