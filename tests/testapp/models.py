from django.db import models


class Tag(models.Model):
    """Tags of an article: a to-many facet path (``tags__name``)."""

    name = models.CharField(max_length=32)

    def __str__(self) -> str:
        return self.name


class Author(models.Model):
    """An article's author: a ForeignKey that text fields read through (``author__name``)."""

    name = models.CharField(max_length=64)
    country = models.CharField(max_length=32, blank=True)

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
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL, related_name="articles")

    def __str__(self) -> str:
        return self.headline

    @property
    def byline(self) -> str:
        """A property reading a relation: declared with ``depends_on=("author",)``."""
        return f"from {self.author.country}" if self.author and self.author.country else ""

    def section_label(self) -> str:
        return f"{self.section} section"


class Comment(models.Model):
    """A reverse ForeignKey of an article (``comments__text``)."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    text = models.CharField(max_length=200)
