"""The query-embedding cache: identical vectors, keyed by encoder identity, counted, never in the way.

Runs against the tests' private redis-server through Django's RedisCache (the "query_cache" alias of the
demo settings), like a deployment would.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

from catalog_search import search
from catalog_search.encoding.encoders import Encoder
from catalog_search.retrieval import query_cache
from tests.tiny_models import build_tiny_dual_encoder

CACHED = {"QUERY_CACHE": "query_cache"}


@pytest.fixture
def redis_cache(settings):
    """The real Redis-backed alias, emptied, with catalog_search pointed at it."""
    assert caches["query_cache"].__class__.__name__ == "RedisCache"
    caches["query_cache"].clear()
    settings.CATALOG_SEARCH = {**settings.CATALOG_SEARCH, **CACHED}
    query_cache._down_until = 0.0
    yield caches["query_cache"]
    caches["query_cache"].clear()


def test_a_cached_vector_is_identical_to_a_fresh_encoding(redis_cache, encoder):
    first = query_cache.text_vector(encoder, "red leather tote")
    assert query_cache.stats()["misses"] == 1
    second = query_cache.text_vector(encoder, "red leather tote")
    fresh = encoder.encode_texts(["red leather tote"])[0]
    assert second.dtype == np.float32 and second.tobytes() == first.tobytes() == fresh.tobytes()
    stats = query_cache.stats()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 1, 0.5)
    assert stats["backend"] == "django.core.cache.backends.redis.RedisCache" and stats["since"]
    # Stored in Redis itself, under the encoder's identity and runtime.
    key = query_cache.key_for(encoder, "red leather tote")
    assert encoder.identity in key and ":torch:" in key
    assert np.frombuffer(redis_cache.get(key), dtype=np.float32).tobytes() == fresh.tobytes()


def test_the_key_is_the_encoder_identity_and_the_normalized_query(redis_cache, encoder, tmp_path):
    other = Encoder(str(build_tiny_dual_encoder(tmp_path / "dual")), device="cpu")
    mine = query_cache.text_vector(encoder, "red bag")
    theirs = query_cache.text_vector(other, "red bag")  # same text, another model: never the cached vector
    assert theirs.shape != mine.shape and theirs.tobytes() == other.encode_texts(["red bag"])[0].tobytes()
    assert query_cache.stats()["misses"] == 2
    # Case, spacing and compatibility forms (full-width letters) map to one entry for an uncased tokenizer.
    for variant in ["  Red   BAG ", "red\tbag", "ｒｅｄ bag"]:
        assert query_cache.text_vector(encoder, variant).tobytes() == mine.tobytes()
    assert (query_cache.stats()["hits"], query_cache.stats()["misses"]) == (3, 2)
    assert query_cache.normalize_query(" Red  BAG ", case_insensitive=False) == "Red BAG"


def test_search_uses_the_cache_and_status_reports_the_hit_rate(redis_cache, make_product, capsys):
    make_product("Red leather tote", color="red")
    make_product("Blue canvas sneakers", category="shoes", color="blue")
    call_command("catalog_search", "reindex", "--all", "--sync")
    call_command("catalog_search", "status", "--reset-cache-stats")
    capsys.readouterr()
    uncached = search(q="red tote", mode="vector")
    cached = search(q="red tote", mode="vector")
    assert [(r.id, r.score) for r in cached.results] == [(r.id, r.score) for r in uncached.results]
    call_command("catalog_search", "status")
    assert "Query-embedding cache 'query_cache': hit rate 50.0% (1 hits, 1 misses since " in capsys.readouterr().out
    call_command("catalog_search", "status", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["query_cache"]["hit_rate"] == 0.5 and data["runtime"] == "torch"


def test_an_unreachable_cache_never_fails_a_search(encoder, settings, caplog):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"socket_connect_timeout": 0.2},
        },
    }
    query_cache._down_until = 0.0
    with override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, "QUERY_CACHE": "dead"}):
        vector = query_cache.text_vector(encoder, "red bag")
        assert vector.tobytes() == encoder.encode_texts(["red bag"])[0].tobytes()
        assert "Query-embedding cache unavailable" in caplog.text
        assert query_cache._cache() is None  # skipped for a while instead of waiting on every query
        assert "error" in query_cache.stats()
    query_cache._down_until = 0.0
    with override_settings(CATALOG_SEARCH={**settings.CATALOG_SEARCH, "QUERY_CACHE": None}):
        assert query_cache.stats() == {"enabled": False}
        assert query_cache.text_vector(encoder, "red bag").tobytes() == vector.tobytes()
