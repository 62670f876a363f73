"""Migrations on an index built before them: 0002 gives existing postings their document's fields, nothing
is lost; 0004 keeps image vectors in the table's rows."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("catalog_search", "0001_initial")]
AFTER = [("catalog_search", "0002_posting_covering")]


def _migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)


def test_0002_fills_postings_from_their_documents_and_rebuilds_the_primary_key():
    ct = ContentType.objects.get_for_model(Article).pk
    other = ContentType.objects.get_for_model(ContentType).pk
    try:
        _migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO catalog_search_document (content_type_id, object_id, length, terms, content_hash, "
                "error, indexed_at) VALUES (%s, '7', 3.5, '{red,bag}', '', '', now()), "
                "(%s, '8', 2.0, '{red}', '', '', now()), (%s, '7', 9.0, '{red}', '', '', now()) RETURNING id",
                [ct, ct, other],
            )
            a, b, c = (row[0] for row in cursor.fetchall())
            cursor.execute(
                "INSERT INTO catalog_search_posting (term, document_id, tf) VALUES "
                "('red', %s, 1.0), ('bag', %s, 2.0), ('red', %s, 1.5), ('red', %s, 4.0)",
                [a, a, b, c],
            )
        _migrate(AFTER)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT term, document_id, tf, content_type_id, object_id, length FROM catalog_search_posting "
                "ORDER BY document_id, term"
            )
            assert cursor.fetchall() == [
                ("bag", a, 2.0, ct, "7", 3.5),
                ("red", a, 1.0, ct, "7", 3.5),
                ("red", b, 1.5, ct, "8", 2.0),
                ("red", c, 4.0, other, "7", 9.0),
            ]
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'catalog_search_posting_pkey'")
            assert "INCLUDE (content_type_id, object_id, length, tf)" in cursor.fetchone()[0]
            cursor.execute(
                "SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = 'catalog_search_posting'::regclass "
                "AND attname IN ('content_type_id', 'object_id', 'length') ORDER BY attname"
            )
            assert cursor.fetchall() == [("content_type_id", True), ("length", True), ("object_id", True)]
    finally:  # leave the schema as the rest of the suite expects it: every migration applied
        executor = MigrationExecutor(connection)
        _migrate([n for n in executor.loader.graph.leaf_nodes() if n[0] == "catalog_search"])


def _embed(cursor, ct: int, encoder: int, object_id: str, rng) -> int:
    """One document with CLIP-sized (512-d) image and text vectors; returns the document id."""
    cursor.execute(
        "INSERT INTO catalog_search_document (content_type_id, object_id, length, terms, content_hash, error, "
        "indexed_at) VALUES (%s, %s, 1, '{}', '', '', now()) RETURNING id",
        [ct, object_id],
    )
    doc = cursor.fetchone()[0]
    image, text = (str([round(float(x), 6) for x in rng.standard_normal(512)]) for _ in range(2))
    cursor.execute(
        "INSERT INTO catalog_search_embedding (document_id, encoder_id, content_type_id, object_id, image, text) "
        "VALUES (%s, %s, %s, %s, %s::vector, %s::vector)",
        [doc, encoder, ct, object_id, image, text],
    )
    return doc


def _in_toast(cursor, doc: int) -> tuple[bool, bool]:
    """(image in TOAST, text in TOAST) of one document's vectors (PostgreSQL 17+)."""
    cursor.execute(
        "SELECT pg_column_toast_chunk_id(image) IS NOT NULL, pg_column_toast_chunk_id(text) IS NOT NULL "
        "FROM catalog_search_embedding WHERE document_id = %s",
        [doc],
    )
    return cursor.fetchone()


def test_0004_stores_new_image_vectors_in_the_row_and_vacuum_full_moves_the_old_ones():
    import numpy as np

    rng = np.random.default_rng(0)
    ct = ContentType.objects.get_for_model(Article).pk
    try:
        _migrate([("catalog_search", "0003_vocabulary")])
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO catalog_search_encoder (identity, name, dim, state, created_at) "
                "VALUES ('m@0004', 'm', 512, 'building', now()) RETURNING id"
            )
            encoder = cursor.fetchone()[0]
            old = _embed(cursor, ct, encoder, "1", rng)
            assert _in_toast(cursor, old) == (True, True)  # 2 KB each: out of line by default
        _migrate([("catalog_search", "0004_image_vectors_in_row")])
        with connection.cursor() as cursor:
            new = _embed(cursor, ct, encoder, "2", rng)
            assert _in_toast(cursor, new) == (False, True)
            assert _in_toast(cursor, old) == (True, True)  # no rewrite by the migration itself
            cursor.execute("SELECT image::text FROM catalog_search_embedding WHERE document_id = %s", [old])
            before = cursor.fetchone()[0]
            cursor.execute("VACUUM FULL catalog_search_embedding")
            assert _in_toast(cursor, old) == (False, True)
            cursor.execute("SELECT image::text FROM catalog_search_embedding WHERE document_id = %s", [old])
            assert cursor.fetchone()[0] == before
        _migrate([("catalog_search", "0003_vocabulary")])  # reversible
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attstorage FROM pg_attribute WHERE attrelid = 'catalog_search_embedding'::regclass "
                "AND attname = 'image'"
            )
            assert cursor.fetchone()[0] == "x"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM catalog_search_embedding WHERE object_id IN ('1', '2')")
            cursor.execute(
                "DELETE FROM catalog_search_document WHERE object_id IN ('1', '2') AND content_type_id = %s", [ct]
            )
            cursor.execute("DELETE FROM catalog_search_encoder WHERE identity = 'm@0004'")
        executor = MigrationExecutor(connection)
        _migrate([n for n in executor.loader.graph.leaf_nodes() if n[0] == "catalog_search"])
