import catalog_search
from catalog_search import QueryField, RangeFacet, SearchField
from demo_project.shop.artwork import TYPES
from demo_project.shop.catalog import PATTERN_TERMS
from demo_project.shop.models import Product
from demo_project.shop.photos import COLORS


def _synonyms(names: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """The shop's other words for each value: value -> its words, as word -> value."""
    return {word: value for value, words in names.items() for word in words if word != value}


# The demo shop's own vocabulary: the words its copywriters use for each product type, color and pattern.
TYPE_SYNONYMS = _synonyms({t.noun: t.terms for t in TYPES})
COLOR_SYNONYMS = _synonyms({name: color.terms for name, color in COLORS.items()})
PATTERN_SYNONYMS = _synonyms(dict(PATTERN_TERMS))


@catalog_search.register
class ProductIndex(catalog_search.SearchIndex):
    model = Product
    text_fields = [SearchField("title", weight=3), SearchField("description", weight=1)]
    image_field = "image"
    filter_fields = ["category", "product_type", "brand", "color", "pattern", "price", "in_stock"]
    facet_fields = ["category", "product_type", "brand", "color", "pattern", RangeFacet("price", [0, 25, 50, 100, 250])]
    display_fields = ["title", "category", "product_type", "brand", "color", "pattern", "price", "in_stock"]
    # What a query may name, highest priority first: "crimson tote under 50" is a handbag, red, <= 50.
    query_fields = [
        QueryField("product_type", synonyms=TYPE_SYNONYMS),
        QueryField("color", synonyms=COLOR_SYNONYMS, colors=True),
        QueryField("pattern", synonyms=PATTERN_SYNONYMS),
        QueryField("brand"),
        QueryField("category"),
    ]
    price_field = "price"
    # sort=price, sort=-price, sort=title, sort=-added_at ("Newest")
    sort_fields = ["price", "title", "added_at"]
