"""Query-embedding cache: a typed query is encoded once, then read back from a shared cache.

Shoppers repeat queries ("sneakers", "red dress"), and encoding is most of a text search's CPU. Entries
live in the Django cache named by ``CATALOG_SEARCH["QUERY_CACHE"]`` (use a shared backend such as
``django.core.cache.backends.redis.RedisCache`` so every web process profits), keyed by the encoder's
identity, the runtime and the normalized query text: retrained weights or another runtime never see
another model's vectors, and nothing has to be invalidated.

Normalization is Unicode NFKC plus collapsed whitespace, and lower-casing only when the tokenizer
ignores case anyway (checked on the loaded tokenizer), so a cached vector is exactly the vector the
encoder returns for the normalized text. Hits and misses are counted in the cache itself (atomic
``incr``) and shown by ``manage.py catalog_search status``. A cache that fails (Redis down) is skipped
for ``RETRY_AFTER_SECONDS``: searching never fails or waits because of it.
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.cache import InvalidCacheBackendError, caches

from catalog_search import conf

if TYPE_CHECKING:
    from catalog_search.encoding.encoders import Encoder

logger = logging.getLogger(__name__)

PREFIX = "catalog_search:qv"
STATS_KEYS = {"hits": f"{PREFIX}:stats:hits", "misses": f"{PREFIX}:stats:misses"}
SINCE_KEY = f"{PREFIX}:stats:since"
RETRY_AFTER_SECONDS = 30.0

_down_until = 0.0  # monotonic time until which a failed cache is skipped (process-wide)
_case_insensitive: dict[str, bool] = {}


def normalize_query(text: str, case_insensitive: bool = False) -> str:
    """The cache's view of a query: NFKC, whitespace collapsed, lower-cased if the tokenizer ignores case."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return text.lower() if case_insensitive else text


def _ignores_case(encoder: Encoder) -> bool:
    """Whether the tokenizer maps "Red Bag" and "red bag" to the same tokens (uncased BERT, CLIP)."""
    if encoder.identity not in _case_insensitive:
        probe = "Red Bag WITH Ünïcode Straße"
        ids = encoder.tokenizer([probe, probe.lower()])["input_ids"]
        _case_insensitive[encoder.identity] = list(ids[0]) == list(ids[1])
    return _case_insensitive[encoder.identity]


def _cache() -> Any | None:
    global _down_until
    alias = conf.settings().QUERY_CACHE
    if not alias or time.monotonic() < _down_until:
        return None
    try:
        return caches[alias]
    except InvalidCacheBackendError:
        logger.warning("CATALOG_SEARCH['QUERY_CACHE'] = %r is not in CACHES; query embeddings are not cached.", alias)
        _down_until = time.monotonic() + RETRY_AFTER_SECONDS
        return None


def _failed(exc: Exception) -> None:
    global _down_until
    _down_until = time.monotonic() + RETRY_AFTER_SECONDS
    logger.warning("Query-embedding cache unavailable (%s); encoding without it for %ds.", exc, RETRY_AFTER_SECONDS)


def key_for(encoder: Encoder, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{PREFIX}:{encoder.identity}:{encoder.runtime.kind}:{digest}"


def _count(cache: Any, outcome: str) -> None:
    key = STATS_KEYS[outcome]
    try:
        cache.incr(key)
    except ValueError:  # first count since the cache was emptied
        cache.add(SINCE_KEY, time.time(), timeout=None)
        if not cache.add(key, 1, timeout=None):
            cache.incr(key)


def text_vector(encoder: Encoder, text: str) -> np.ndarray:
    """The unit-length vector of query ``text``, from the cache when it was encoded before."""
    normalized = normalize_query(text, _ignores_case(encoder))
    cache = _cache()
    if cache is None:
        return encoder.encode_texts([normalized])[0]
    key = key_for(encoder, normalized)
    try:
        stored = cache.get(key)
        if stored is not None and len(stored) == 4 * encoder.dim:
            _count(cache, "hits")
            return np.frombuffer(stored, dtype=np.float32).copy()
    except Exception as exc:  # the cache backend's own connection errors
        _failed(exc)
        return encoder.encode_texts([normalized])[0]
    vector = encoder.encode_texts([normalized])[0]
    try:
        cache.set(key, vector.astype(np.float32).tobytes(), timeout=conf.settings().QUERY_CACHE_TIMEOUT)
        _count(cache, "misses")
    except Exception as exc:
        _failed(exc)
    return vector


def text_vectors(encoder: Encoder, texts: list[str]) -> dict[str, np.ndarray]:
    """text -> ``text_vector(encoder, text)``, for texts the search itself encodes (a kind's name,
    photo_order.py): one cache round trip, one encoder batch for those not cached. Not counted in the hit
    rate, which is the shoppers' queries'."""
    case_insensitive = _ignores_case(encoder)
    normalized = {text: normalize_query(text, case_insensitive) for text in texts}
    keys = {key_for(encoder, text): text for text in set(normalized.values())}
    cache, stored = _cache(), {}
    if cache is not None:
        try:
            stored = cache.get_many(list(keys))
        except Exception as exc:  # the cache backend's own connection errors
            _failed(exc)
            cache = None
    vectors = {
        keys[key]: np.frombuffer(raw, dtype=np.float32).copy()
        for key, raw in stored.items()
        if raw is not None and len(raw) == 4 * encoder.dim
    }
    missing = sorted(set(keys.values()) - set(vectors))
    if missing:
        vectors.update(zip(missing, encoder.encode_texts(missing), strict=True))
        if cache is not None:
            fresh = {key_for(encoder, text): vectors[text].astype(np.float32).tobytes() for text in missing}
            try:
                cache.set_many(fresh, timeout=conf.settings().QUERY_CACHE_TIMEOUT)
            except Exception as exc:
                _failed(exc)
    return {text: vectors[normalized[text]] for text in texts}


def stats() -> dict[str, Any]:
    """Hit rate since the counters started (shown by ``catalog_search status``)."""
    alias = conf.settings().QUERY_CACHE
    if not alias:
        return {"enabled": False}
    info: dict[str, Any] = {"enabled": True, "alias": alias}
    try:
        cache = caches[alias]
        info["backend"] = f"{type(cache).__module__}.{type(cache).__name__}"
        values = cache.get_many([*STATS_KEYS.values(), SINCE_KEY])
    except Exception as exc:
        return {**info, "error": str(exc)}
    hits, misses = int(values.get(STATS_KEYS["hits"], 0)), int(values.get(STATS_KEYS["misses"], 0))
    since = values.get(SINCE_KEY)
    return {
        **info,
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)) if since else None,
    }


def reset_stats() -> None:
    alias = conf.settings().QUERY_CACHE
    if alias:
        caches[alias].delete_many([*STATS_KEYS.values(), SINCE_KEY])
