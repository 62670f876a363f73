"""Postings carry their document's content type, object id and length, and the primary key index
INCLUDEs them: BM25 and facet queries read only the index (see models.Posting).

Existing postings are filled from their documents in one UPDATE, then the primary key is rebuilt:
about 25 s per 100k indexed products (2.5M postings), the posting table locked meanwhile. The UPDATE
leaves the old row versions as dead space; ``VACUUM FULL catalog_search_posting`` returns it (see
docs/configuration.md, migrate).
"""

import django.db.models.deletion
from django.db import migrations, models

PKEY = "catalog_search_posting_pkey"
COVERING = (
    f"ALTER TABLE catalog_search_posting DROP CONSTRAINT {PKEY}, ADD CONSTRAINT {PKEY} "
    "PRIMARY KEY (term, document_id) INCLUDE (content_type_id, object_id, length, tf)"
)
PLAIN = (
    f"ALTER TABLE catalog_search_posting DROP CONSTRAINT {PKEY}, ADD CONSTRAINT {PKEY} PRIMARY KEY (term, document_id)"
)
FILL = (
    "UPDATE catalog_search_posting p SET content_type_id = d.content_type_id, object_id = d.object_id, "
    "length = d.length FROM catalog_search_document d WHERE d.id = p.document_id"
)


class Migration(migrations.Migration):
    dependencies = [
        ("catalog_search", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="posting",
            name="content_type",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                default=None,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="contenttypes.contenttype",
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="posting",
            name="object_id",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="posting",
            name="length",
            field=models.FloatField(default=0.0, help_text="the document's BM25 length"),
            preserve_default=False,
        ),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="posting",
            name="content_type",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="contenttypes.contenttype",
            ),
        ),
        migrations.RunSQL(COVERING, PLAIN),
    ]
