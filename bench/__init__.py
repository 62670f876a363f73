"""Benchmarks of catalog_search (run them as scripts, e.g. ``python bench/load.py``)."""
