"""Image vectors are stored in the table's own rows instead of TOAST (``STORAGE MAIN``).

A 512-d float32 vector is 2 KB, just over PostgreSQL's in-row limit, so by default each one lived out of
line and every read of it (the filtered exact search, the over-fetch walk) cost a TOAST index probe and
two chunk reads: about 3.7 us a vector, most of an exact search over 12k filtered rows at 100k products
(docs/architecture.md, vector retrieval; docs/benchmarks.md, "Side by side: database layouts"). The image
column is the one every text and photo query searches by default; the text column stays in TOAST, which
keeps a row at about 2.1 KB (three to a page).

Only the column's storage mode changes (no rewrite, no lock beyond a moment): rows written from now on
(saves, reindexing) keep their image vector in the row. ``VACUUM FULL catalog_search_embedding`` moves the
existing ones at once (it rewrites the table, locking it meanwhile; docs/configuration.md, migrate).
"""

from django.db import migrations

TABLE = "catalog_search_embedding"


class Migration(migrations.Migration):
    dependencies = [("catalog_search", "0003_vocabulary")]

    operations = [
        migrations.RunSQL(
            f"ALTER TABLE {TABLE} ALTER COLUMN image SET STORAGE MAIN",
            reverse_sql=f"ALTER TABLE {TABLE} ALTER COLUMN image SET STORAGE EXTENDED",
        )
    ]
