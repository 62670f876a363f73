import catalog_search
from catalog.models import Item
from catalog_search import SearchField


@catalog_search.register
class ItemIndex(catalog_search.SearchIndex):
    model = Item
    text_fields = [
        SearchField("title", weight=2),
        SearchField("description"),
        SearchField("brand__name"),
        SearchField("tags__name"),
    ]
    image_field = "photo"
    filter_fields = ["brand__name", "tags__name", "price", "available"]
    facet_fields = ["brand__name", "tags__name"]
    display_fields = ["title", "price"]
    query_fields = ["tags__name", "brand__name"]  # values a query may name, through relations
    price_field = "price"
