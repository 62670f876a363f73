"""Database triggers that write the outbox in the same transaction as every change.

Each registered model's table gets ``AFTER INSERT OR UPDATE OR DELETE`` row trigger
``catalog_search_outbox``. Unlike Django signals, it also sees ``QuerySet.update()``, ``bulk_create``,
raw SQL and changes made by other programs, and cannot be lost between the save's commit and a
second statement. Installed after every ``migrate`` (post_migrate) and by
``manage.py catalog_search install-triggers``.
"""

from __future__ import annotations

from django.db import connection

from catalog_search.registry import SearchIndex, get_indexes

TRIGGER = "catalog_search_outbox"

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION catalog_search_outbox_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ct integer := TG_ARGV[0]::integer;
    pk_column text := TG_ARGV[1];
    new_id text;
    old_id text;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_id := to_jsonb(OLD) ->> pk_column; END IF;
    IF TG_OP <> 'DELETE' THEN new_id := to_jsonb(NEW) ->> pk_column; END IF;
    IF old_id IS NOT NULL AND old_id IS DISTINCT FROM new_id THEN
        INSERT INTO catalog_search_outbox (content_type_id, object_id, action, version, force, created_at,
                                           updated_at, attempts, last_error)
        VALUES (ct, old_id, 'delete', 1, false, now(), now(), 0, '')
        ON CONFLICT (content_type_id, object_id) DO UPDATE
            SET action = 'delete', version = catalog_search_outbox.version + 1, updated_at = now();
    END IF;
    IF new_id IS NOT NULL THEN
        INSERT INTO catalog_search_outbox (content_type_id, object_id, action, version, force, created_at,
                                           updated_at, attempts, last_error)
        VALUES (ct, new_id, 'index', 1, false, now(), now(), 0, '')
        ON CONFLICT (content_type_id, object_id) DO UPDATE
            SET action = 'index', version = catalog_search_outbox.version + 1, updated_at = now();
    END IF;
    RETURN NULL;
END $$;
"""


def _table_sql(index: SearchIndex) -> tuple[str, str, int]:
    meta = index.model._meta
    quote = connection.ops.quote_name
    return quote(meta.db_table), meta.pk.column, index.content_type.pk


def install_triggers(indexes: list[SearchIndex] | None = None) -> list[str]:
    """(Re)create the trigger function and one trigger per registered model; return the tables."""
    tables = []
    with connection.cursor() as cursor:
        cursor.execute(FUNCTION_SQL)
        for index in indexes if indexes is not None else get_indexes():
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [index.model._meta.db_table])
            if not cursor.fetchone()[0]:
                continue  # that app is not migrated yet; the next migrate installs it
            table, pk_column, ct = _table_sql(index)
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")
            if not pk_column.replace("_", "").isalnum():
                raise ValueError(f"Unsupported primary key column name {pk_column!r}")
            # Trigger arguments are literals (no bind parameters in DDL); both values are ours, checked.
            cursor.execute(
                f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION catalog_search_outbox_trigger('{int(ct)}', '{pk_column}')"
            )
            tables.append(index.model._meta.db_table)
    return tables
