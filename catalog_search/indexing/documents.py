"""Index documents: what the index stores for each object's text, and writing it (postings, statistics).

Every write of a batch is one transaction, so a failure never leaves half an index. BM25 statistics are
maintained incrementally: (re)indexing a document subtracts its old terms from the document frequencies
and adds its new ones, under a row lock on the content type's corpus row (which serializes concurrent
writers of one model and so rules out deadlocks on shared terms).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection, models, transaction

from catalog_search.analysis import get_analyzer
from catalog_search.encoding.images import open_image
from catalog_search.exceptions import InvalidImage
from catalog_search.indexing import values
from catalog_search.registry import SearchIndex


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


def build_doc(index: SearchIndex, instance: models.Model, *, with_image: bool = True) -> Doc:
    """Analyze the text fields of ``instance`` and decode its image (errors recorded, not raised)."""
    analyzer = get_analyzer()
    tf: Counter[str] = Counter()
    length = 0.0
    texts = index.field_texts(instance)
    for search_field, text in zip(index.search_fields, texts, strict=True):
        terms = analyzer.terms(text)
        for term in terms:
            tf[term] += float(search_field.weight)
        length += float(search_field.weight) * len(terms)
    image = getattr(instance, index.image_field, None) if index.image_field else None
    fingerprint = json.dumps([texts, image.name if image else None])
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


def _apply_stats(cursor, content_type_id: int, df_delta: Counter, *, docs_delta: int, length_delta: float) -> None:
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


def write_documents(index: SearchIndex, docs: Sequence[Doc]) -> dict[str, int]:
    """Upsert ``docs`` (postings and statistics) in one transaction; return object_id -> document id.
    Their vectors are written by ``vectors.write_vectors``, in the same transaction as the caller's."""
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
        _apply_stats(cursor, ct, df_delta, docs_delta=len(docs) - len(old), length_delta=length_delta)
        values.record(cursor, index, oids, [d.text for d in docs])
    return ids


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
        _apply_stats(cursor, ct, df_delta, docs_delta=-len(old), length_delta=-sum(row[2] for row in old))
    return len(old)
