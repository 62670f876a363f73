"""Array literals (retrieval/arrays.py) read back by PostgreSQL as the lists they were made from."""

from __future__ import annotations

import pytest
from django.db import connection

from catalog_search.sql import int_array, text_array

AWKWARD = ["42", 'say "hi"', "back\\slash", "a,b", "{braces}", " spaced ", "NULL", "", "é ✓", "it's"]


@pytest.mark.django_db
def test_text_array_round_trips_any_string():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [text_array(AWKWARD)])
        assert cursor.fetchone()[0] == AWKWARD
        cursor.execute("SELECT %s::text[], %s::bigint[]", [text_array([]), int_array([])])
        assert cursor.fetchone() == ([], [])


@pytest.mark.django_db
def test_int_array_and_typed_casts():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[], %s::integer[]", [int_array([3, 2**40, -1]), text_array(["7", "8"])])
        assert cursor.fetchone() == ([3, 2**40, -1], [7, 8])
    with pytest.raises(ValueError):
        int_array(["7; DROP TABLE x"])
