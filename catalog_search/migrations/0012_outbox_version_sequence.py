"""Outbox versions come from one sequence (``catalog_search_outbox_version``), so a version is never issued
twice, not even to an object whose outbox row was deleted (done) and then inserted again by a later change.
Before, a new row started again at version 1: a worker frozen past its lease (its heartbeat stopped with it)
that woke after another worker had finished the object and the object had been saved again found "its"
version 1 current, wrote what it had read before that save and deleted the new row, so the index kept the
older content (tests/test_outbox.py). The triggers (indexing/triggers.py) and ``outbox.mark`` take their
versions from it; it starts above every version already stored, so no claim taken before this migration
can match a later change either. The sequence is kept on a migration back (the triggers of a database
migrated back still name it)."""

from django.db import migrations

CREATE = """
CREATE SEQUENCE IF NOT EXISTS catalog_search_outbox_version AS bigint;
SELECT setval('catalog_search_outbox_version',
              GREATEST((SELECT max(version) FROM catalog_search_outbox), 0) + 1000000, false);
"""


class Migration(migrations.Migration):
    dependencies = [("catalog_search", "0011_search_analytics")]

    operations = [migrations.RunSQL(CREATE, reverse_sql=migrations.RunSQL.noop)]
