from django.db import models


class Tag(models.Model):
    """Tags of an article: a to-many facet path (``tags__name``)."""

    name = models.CharField(max_length=32)

    def __str__(self) -> str:
        return self.name


class Article(models.Model):
    """A differently shaped model: no image, integer and date filters, a 'published' queryset hook."""

    headline = models.CharField(max_length=200)
    body = models.TextField()
    section = models.CharField(max_length=32)
    rating = models.IntegerField(default=0)
    published = models.BooleanField(default=True)
    published_on = models.DateField(null=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")

    def __str__(self) -> str:
        return self.headline
