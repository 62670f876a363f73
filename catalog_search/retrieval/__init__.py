"""Query side, named "retrieval" so it does not shadow the public ``catalog_search.search()``:
query.py parses and validates, filters.py compiles filters to SQL, bm25.py and vector.py retrieve
candidates, fusion.py merges them, facets.py counts, engine.py runs it all."""
