"""Migration 0002 on an index built before it: existing postings get their document's fields, nothing is lost."""

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
