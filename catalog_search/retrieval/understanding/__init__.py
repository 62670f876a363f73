"""Query understanding: price phrases, the query fields' values and typo corrections found in ``q``
(parse.py), applied by the understand stage (retrieval/understand.py) and the boost stage (boost.py)."""
