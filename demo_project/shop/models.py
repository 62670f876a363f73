from django.db import models
from django.utils import timezone


class Product(models.Model):
    """A product of the demo shop; indexed by catalog_search (see search_indexes.py)."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=64, db_index=True)
    # What kind of product it is (Shopify's product type, Google's product category): "sneakers", "handbag".
    product_type = models.CharField(max_length=64, blank=True, db_index=True)
    brand = models.CharField(max_length=64, db_index=True)
    color = models.CharField(max_length=32, db_index=True)
    pattern = models.CharField(max_length=32, default="solid", db_index=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, db_index=True)
    in_stock = models.BooleanField(default=True)
    image = models.ImageField(upload_to="products/", blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    added_at = models.DateTimeField(default=timezone.now, db_index=True, help_text="when it was listed: “Newest”")

    class Meta:
        ordering = ["id"]
        indexes = [
            # Search reads the facet and filter values of every product a query matches by primary key:
            # with them in the index, an index-only scan (docs/configuration.md, "Large catalogs").
            models.Index(
                fields=["id"],
                include=["category", "product_type", "brand", "color", "pattern", "price", "in_stock"],
                name="shop_product_search_cover",
            ),
            # A search within a category, by price: the filter's ids from the index alone, not from
            # 12k table rows (docs/configuration.md, "Large catalogs").
            models.Index(fields=["category", "price"], include=["id"], name="shop_product_category_price"),
        ]

    def __str__(self) -> str:
        return self.title
