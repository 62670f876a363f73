"""Products without an image keep a vector path for text queries (retrieval/vector.py, the fallback lane):
each existing encoder gets a partial HNSW index over the text vectors of its rows without an image and a
btree over those rows. Both hold only image-less rows, so they build quickly where most products have a
photo. New encoders get them with the others (indexing/vectors.py)."""

from django.conf import settings
from django.db import migrations


def create(apps, schema_editor):
    options = getattr(settings, "CATALOG_SEARCH", {})
    m, ef = int(options.get("HNSW_M", 16)), int(options.get("HNSW_EF_CONSTRUCTION", 64))
    Encoder = apps.get_model("catalog_search", "Encoder")
    for pk, dim in Encoder.objects.values_list("pk", "dim"):
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS catalog_search_emb_textonly_e{int(pk)} ON catalog_search_embedding "
            f"USING hnsw ((text::vector({int(dim)})) vector_cosine_ops) WITH (m = {m}, ef_construction = {ef}) "
            f"WHERE encoder_id = {int(pk)} AND text IS NOT NULL AND image IS NULL"
        )
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS catalog_search_emb_noimage_e{int(pk)} ON catalog_search_embedding "
            f"(content_type_id, object_id) WHERE encoder_id = {int(pk)} AND image IS NULL"
        )


def drop(apps, schema_editor):
    Encoder = apps.get_model("catalog_search", "Encoder")
    for pk in Encoder.objects.values_list("pk", flat=True):
        schema_editor.execute(f"DROP INDEX IF EXISTS catalog_search_emb_textonly_e{int(pk)}")
        schema_editor.execute(f"DROP INDEX IF EXISTS catalog_search_emb_noimage_e{int(pk)}")


class Migration(migrations.Migration):
    dependencies = [("catalog_search", "0004_image_vectors_in_row")]

    operations = [migrations.RunPython(create, drop)]
