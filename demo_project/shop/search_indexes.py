import catalog_search
from catalog_search import RangeFacet, SearchField
from demo_project.shop.models import Product


@catalog_search.register
class ProductIndex(catalog_search.SearchIndex):
    model = Product
    text_fields = [SearchField("title", weight=3), SearchField("description", weight=1)]
    image_field = "image"
    filter_fields = ["category", "brand", "color", "pattern", "price", "in_stock"]
    facet_fields = ["category", "brand", "color", "pattern", RangeFacet("price", [0, 25, 50, 100, 250])]
    display_fields = ["title", "category", "brand", "color", "pattern", "price", "in_stock"]
