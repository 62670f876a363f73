import catalog_search
from catalog_search import SearchField
from tests.testapp.models import Article


@catalog_search.register
class ArticleIndex(catalog_search.SearchIndex):
    model = Article
    text_fields = [SearchField("headline", weight=2), SearchField("body")]
    filter_fields = ["section", "rating", "published_on"]
    facet_fields = ["section", "tags__name"]  # tags: a to-many path, counted in a query of its own
    display_fields = ["headline", "section", "rating"]
    sort_fields = ["rating"]  # products (shop.product) declare none: sorted after every article

    def get_queryset(self):
        return Article.objects.filter(published=True)
