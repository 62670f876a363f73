from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("catalog_search", "0005_text_only_lane")]

    operations = [
        migrations.AddField(
            model_name="indexrun",
            name="done",
            field=models.PositiveIntegerField(default=0, help_text="objects indexed, removed or found unchanged"),
        ),
    ]
