"""Database triggers that write the outbox in the same transaction as every change.

Each registered model's table gets ``AFTER INSERT OR UPDATE OR DELETE`` row trigger
``catalog_search_outbox``. Unlike Django signals, it also sees ``QuerySet.update()``, ``bulk_create``,
raw SQL and changes made by other programs, and cannot be lost between the save's commit and a
second statement. Installed after every ``migrate`` (post_migrate) and by
``manage.py catalog_search install-triggers``.

Tables that text fields read through relations (a brand's name, a many-to-many's through table;
relations.Dependency) get ``catalog_search_dep_*`` triggers that put the dependent objects in the
outbox: the ORM's own query for them (``Item.objects.filter(brand__pk__in=...)``), compiled once here
and run by the trigger with the changed row's key. An update fires them only when a column the text
reads changed.
"""

from __future__ import annotations

import logging

from django.core.exceptions import FieldDoesNotExist
from django.db import connection
from django.db.models.expressions import RawSQL

from catalog_search.registry import SearchIndex, get_indexes
from catalog_search.relations import Dependency

logger = logging.getLogger(__name__)

TRIGGER = "catalog_search_outbox"
DEPENDENCY_TRIGGER = "catalog_search_dep"

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
        VALUES (ct, old_id, 'delete', nextval('catalog_search_outbox_version'), false, now(), now(), 0, '')
        ON CONFLICT (content_type_id, object_id) DO UPDATE
            SET action = 'delete', version = EXCLUDED.version, updated_at = now();
    END IF;
    IF new_id IS NOT NULL THEN
        INSERT INTO catalog_search_outbox (content_type_id, object_id, action, version, force, created_at,
                                           updated_at, attempts, last_error)
        VALUES (ct, new_id, 'index', nextval('catalog_search_outbox_version'), false, now(), now(), 0, '')
        ON CONFLICT (content_type_id, object_id) DO UPDATE
            SET action = 'index', version = EXCLUDED.version, updated_at = now();
    END IF;
    RETURN NULL;
END $$;
"""


RELATED_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION catalog_search_related_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys text[] := '{}';
BEGIN
    IF TG_OP <> 'INSERT' THEN keys := keys || (to_jsonb(OLD) ->> TG_ARGV[1]); END IF;
    IF TG_OP <> 'DELETE' THEN keys := keys || (to_jsonb(NEW) ->> TG_ARGV[1]); END IF;
    EXECUTE 'INSERT INTO catalog_search_outbox (content_type_id, object_id, action, version, force, '
        'created_at, updated_at, attempts, last_error) '
        'SELECT $2, k.pk, ''index'', nextval(''catalog_search_outbox_version''), false, now(), now(), 0, '''' '
        'FROM (SELECT DISTINCT d.pk::text FROM (' || TG_ARGV[2] || ') AS d(pk)) AS k(pk) '
        'ON CONFLICT (content_type_id, object_id) DO UPDATE SET action = ''index'', '
        'version = EXCLUDED.version, updated_at = now()'
    USING keys, TG_ARGV[0]::integer;
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
    all_indexes = indexes is None
    indexes = indexes if indexes is not None else get_indexes()
    with connection.cursor() as cursor:
        cursor.execute(FUNCTION_SQL)
        cursor.execute(RELATED_FUNCTION_SQL)
        # All of them when installing for every index: those of an index that is gone go too.
        _drop_dependency_triggers(cursor, None if all_indexes else [index.content_type.pk for index in indexes])
        for index in indexes:
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
            tables.extend(_install_dependency_triggers(cursor, index))
    return tables


def _drop_dependency_triggers(cursor, content_type_ids: list[int] | None) -> None:
    quote = connection.ops.quote_name
    prefix = DEPENDENCY_TRIGGER.replace("_", "\\_")
    patterns = [f"{prefix}\\_%"] if content_type_ids is None else [f"{prefix}\\_{ct}\\_%" for ct in content_type_ids]
    cursor.execute(
        "SELECT t.tgname, c.oid::regclass::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname LIKE ANY(%s)",
        [patterns],
    )
    for name, table in cursor.fetchall():
        cursor.execute(f"DROP TRIGGER IF EXISTS {quote(name)} ON {table}")


def _install_dependency_triggers(cursor, index: SearchIndex) -> list[str]:
    try:
        found = index.dependencies()
    except FieldDoesNotExist as exc:  # the system check reports it (catalog_search.E003)
        logger.warning("catalog_search: no dependency triggers for %s: %s", index.label, exc)
        return []
    ct = int(index.content_type.pk)
    tables = []
    for number, dep in enumerate(found):
        table = dep.model._meta.db_table
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if not cursor.fetchone()[0]:
            continue
        args = ", ".join(_literal(a) for a in (str(ct), dep.key_column, dependents_sql(index, dep)))
        call = f"EXECUTE FUNCTION catalog_search_related_trigger({args})"
        name, quoted = f"{DEPENDENCY_TRIGGER}_{ct}_{number}", connection.ops.quote_name(table)
        events = "INSERT OR DELETE" if dep.on_insert else "DELETE"
        cursor.execute(f"CREATE TRIGGER {name} AFTER {events} ON {quoted} FOR EACH ROW {call}")
        if dep.columns != ():
            when = _changed(dep)
            cursor.execute(f"CREATE TRIGGER {name}_u AFTER UPDATE ON {quoted} FOR EACH ROW WHEN ({when}) {call}")
        tables.append(table)
    return tables


def dependents_sql(index: SearchIndex, dep: Dependency) -> str:
    """The primary keys of the indexed objects that show the rows whose keys are ``$1`` (a text array)."""
    keys = RawSQL(f"SELECT unnest($1::text[])::{dep.key_type}", ())
    queryset = index.model._base_manager.filter(**{f"{dep.lookup}__in": keys}).order_by().values("pk")
    sql, params = queryset.query.sql_with_params()
    return connection.ops.compose_sql(sql, params)


def _changed(dep: Dependency) -> str:
    if dep.columns is None:
        return "OLD.* IS DISTINCT FROM NEW.*"
    quote = connection.ops.quote_name
    return " OR ".join(f"OLD.{quote(c)} IS DISTINCT FROM NEW.{quote(c)}" for c in dep.columns)


def _literal(value: str) -> str:
    # Trigger arguments are literals (no bind parameters in DDL); standard_conforming_strings is on.
    return "'" + value.replace("'", "''") + "'"
