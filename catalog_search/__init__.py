"""catalog_search: hybrid BM25 + CLIP product search for Django on PostgreSQL/pgvector.

Public API::

    import catalog_search
    catalog_search.register(ProductIndex)          # usually in your app's search_indexes.py
    results = catalog_search.search(q="red tote", filters={"price__lte": 50})
    typing = catalog_search.suggest("red to", k=8)   # completions and products while typing
    alike = catalog_search.similar(product, k=12)     # "More like this": the nearest other products
    catalog_search.reindex(Product.objects.filter(brand=acme))  # queue objects for the worker
"""

from typing import Any

from catalog_search.exceptions import (
    EncoderUnavailable,
    ImageTooLarge,
    IndexUnavailable,
    InvalidFilter,
    InvalidImage,
    InvalidQuery,
    NotFound,
    NotIndexed,
    SearchError,
    ServiceUnavailable,
    UnsupportedImage,
)
from catalog_search.registry import (
    FacetField,
    FilterField,
    QueryField,
    RangeFacet,
    RankingSignal,
    SearchField,
    SearchIndex,
    get_index,
    get_indexes,
    register,
    unregister,
)

__all__ = [
    "EncoderUnavailable",
    "FacetField",
    "FilterField",
    "QueryField",
    "ImageTooLarge",
    "IndexUnavailable",
    "InvalidFilter",
    "InvalidImage",
    "InvalidQuery",
    "NotFound",
    "NotIndexed",
    "RangeFacet",
    "RankingSignal",
    "SearchError",
    "SearchField",
    "SearchIndex",
    "ServiceUnavailable",
    "UnsupportedImage",
    "get_index",
    "get_indexes",
    "register",
    "reindex",
    "search",
    "similar",
    "suggest",
    "unregister",
]


def search(*args: Any, **kwargs: Any) -> Any:
    """Run a search; see ``catalog_search.retrieval.engine.search`` for the parameters."""
    from catalog_search.retrieval.engine import search as _search

    return _search(*args, **kwargs)


def suggest(*args: Any, **kwargs: Any) -> Any:
    """Completions and products for a query being typed; see ``catalog_search.retrieval.suggest.suggest``."""
    from catalog_search.retrieval.suggest import suggest as _suggest

    return _suggest(*args, **kwargs)


def similar(*args: Any, **kwargs: Any) -> Any:
    """The products nearest one product; see ``catalog_search.retrieval.similar.similar``."""
    from catalog_search.retrieval.similar import similar as _similar

    return _similar(*args, **kwargs)


def reindex(*args: Any, **kwargs: Any) -> int:
    """Queue objects for (re)indexing; see ``catalog_search.indexing.reindex.reindex``."""
    from catalog_search.indexing.reindex import reindex as _reindex

    return _reindex(*args, **kwargs)
