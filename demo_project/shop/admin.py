from django.contrib import admin
from django.utils.html import format_html

from demo_project.shop.models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    """catalog_search adds its "Reindex selected" action here automatically."""

    list_display = ["thumbnail", "title", "category", "brand", "color", "pattern", "price", "in_stock"]
    list_display_links = ["thumbnail", "title"]
    list_filter = ["category", "brand", "color", "pattern", "in_stock"]
    search_fields = ["title", "description", "brand"]
    list_per_page = 50

    @admin.display(description="")
    def thumbnail(self, obj: Product) -> str:
        if not obj.image:
            return "-"
        return format_html('<img src="{}" alt="" style="height:48px;width:48px;object-fit:cover">', obj.image.url)
