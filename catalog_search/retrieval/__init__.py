"""The query side, named "retrieval" so it does not shadow the public ``catalog_search.search()``.

engine.py runs ``search()`` as stages over one per-search context (context.py): query.py validates;
understand.py finds the terms (with expansion/) and the query vectors (query_cache.py); filters.py reads
each index's filter once; keyword_signal.py (BM25 in bm25.py, facet counts in facets.py) and
vector_signal.py (pgvector in vector.py) retrieve candidates, side by side on two connections
(parallel.py); fusion.py merges them; resolve.py turns the page into results (results.py).
"""
