from django.db import models


class Article(models.Model):
    """A differently shaped model: no image, integer and date filters, a 'published' queryset hook."""

    headline = models.CharField(max_length=200)
    body = models.TextField()
    section = models.CharField(max_length=32)
    rating = models.IntegerField(default=0)
    published = models.BooleanField(default=True)
    published_on = models.DateField(null=True)

    def __str__(self) -> str:
        return self.headline
