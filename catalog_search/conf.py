"""The ``CATALOG_SEARCH`` setting, read in one place. Every key and its default is in docs/configuration.md.

``settings()`` is the project's values over the defaults as one frozen, typed object, converted once (and
again when Django reports the setting changed, as in tests); callers read attributes and never cast.
``raw()`` is a value as the project wrote it, for the system checks that judge it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every CATALOG_SEARCH key with its default."""

    # Encoder: a local directory or a hub id of any dual encoder with get_text_features/get_image_features.
    MODEL: str = "openai/clip-vit-base-patch32"
    DEVICE: str = "auto"  # "auto" picks CUDA when available, else CPU; or "cpu", "cuda", "cuda:1", ...
    ENCODE_BATCH_SIZE: int = 32
    # Where forward passes run: "torch" (any checkpoint, CPU or CUDA) or "onnx" (ONNX Runtime on the CPU,
    # from the graphs `manage.py catalog_search export-onnx` writes; several times faster on CPUs).
    RUNTIME: str = "torch"
    ONNX_DIR: str | None = (
        None  # None = <model dir>/onnx for a local model, ~/.cache/catalog_search/onnx/<id> for a hub id
    )
    THREADS: int | None = None  # intra-op threads of the runtime; None = the library's default (one per core)
    FAST_PREPROCESSING: bool = True  # numpy/PIL resize+crop+normalize for CLIP-style processors (same pixels)
    # Query-embedding cache: a Django cache alias (use a shared one such as Redis) or None to disable.
    QUERY_CACHE: str | None = "default"
    QUERY_CACHE_TIMEOUT: int = 7 * 24 * 3600  # seconds; entries are keyed by encoder identity, so never stale
    # Text analysis.
    LANGUAGE: str | None = "english"  # any Snowball stemmer language, or None to disable stemming
    STOPWORDS: Iterable[str] | None = None  # None = the built-in list for LANGUAGE; or an iterable of words
    # BM25 (Lucene variant; see docs/architecture.md).
    BM25_K1: float = 1.2
    BM25_B: float = 0.75
    # Which documents a keyword query matches: those with at least this many of its terms (Elasticsearch's
    # minimum_should_match: 2, -1, "75%", "-25%"; 1 = any term), one term fewer at a time while fewer than a
    # page match. "75%" (2 of 3 words, 3 of 4; any of 2) ranks as well as any term on the demo judgments and
    # keeps the keyword statement and facets small on large catalogs (docs/relevance.md, docs/benchmarks.md).
    MINIMUM_SHOULD_MATCH: int | str = "75%"
    # Retrieval and fusion.
    CANDIDATES: int = 200  # size of each signal's candidate list before fusion
    # Business ranking: {"shop.product": {"popularity": 0.3}} overrides SearchIndex.ranking_signals' weights
    # (0 turns one off); None: the weights the indexes declare.
    RANKING_WEIGHTS: dict | None = None
    # A text query's keyword statement runs on a second database connection while the vector search runs,
    # when the search is alone in its process (retrieval/parallel.py); False runs them one after the other.
    PARALLEL_RETRIEVAL: bool = True
    # Facet counts over "matches" (every keyword match plus the vector candidates) or "results" (the fused
    # candidates: what the query can page through; cheaper on large catalogs). docs/configuration.md.
    FACETS_OVER: str = "matches"
    # Multi-select facets (Algolia's disjunctive faceting, Elasticsearch's post_filter): a facet the request
    # filters on is counted with every other filter but not its own, so ticking "red" keeps the other colors
    # and their counts. False: every facet counted under every filter.
    DISJUNCTIVE_FACETS: bool = True
    # RRF_K stays the usual 60 (Cormack et al.): a smaller k trusts each signal's first ranks more, which only
    # pays when both signals are good. Tune it per catalog with `catalog_search evaluate --tune`; the demo
    # shop sets 5 (docs/relevance.md). DEFAULT_ALPHA and COMPOSED_TEXT_WEIGHT were tuned on the demo too.
    RRF_K: int = 60
    # The fusion of a hybrid search that does not name one ("rrf" or "weighted"). RRF needs no calibration and
    # suits any encoder; weighted fusion at a tuned alpha pays with a strong one (the demo shop uses it).
    DEFAULT_FUSION: str = "rrf"
    DEFAULT_ALPHA: float = 0.7  # weight of the vector signal in weighted fusion
    TEXT_QUERY_IMAGE_WEIGHT: float = 1.0  # text queries: share of text->image vs text->text similarity
    COMPOSED_TEXT_WEIGHT: float = 2.0  # photo + text: query vector = normalize(image + w * text)
    # Query expansion (retrieval/expansion/): a query word no indexed text contains gets the nearest
    # catalog words by the encoder's word embeddings (vocabulary built by the sweep, or at once by
    # `manage.py catalog_search vocabulary`).
    QUERY_EXPANSION: bool = False
    EXPANSION_THRESHOLD: float = 0.5  # minimum cosine between the query word and a catalog word
    EXPANSION_TERMS: int = 2  # catalog words added per unknown query word
    # An unknown English color name ("ruby", "mocha") adds its basic color term (red, brown) instead of
    # the encoder's nearest word (retrieval/expansion/colors.py).
    EXPANSION_COLORS: bool = True
    # An unknown English word also adds the catalog words WordNet relates to it, synonyms first
    # ("knapsack" -> backpack; retrieval/expansion/thesaurus.py): "wordnet" (needs catalog-search[wordnet]), the
    # path of a WordNet dict directory, or None.
    EXPANSION_THESAURUS: str | None = "wordnet"
    # Query understanding (retrieval/understanding/): the values of SearchIndex.query_fields named in q boost
    # the products that have them (or filter), price phrases filter, unknown words are corrected to the
    # nearest catalog word (docs/relevance.md, "Query understanding"). The `understand` parameter turns it off.
    QUERY_UNDERSTANDING: bool = True
    VALUES_REFRESH_SECONDS: float = 5.0  # how stale a web process's copy of the field values may be
    SYNONYMS_REFRESH_SECONDS: float = 2.0  # how stale its copy of the staff's synonyms may be (synonyms.py)
    RULES_REFRESH_SECONDS: float = 2.0  # and of the staff's query rules (rules.py)
    CURRENCY_SYMBOLS: Iterable[str] = ("$", "€", "£", "¥")  # around a number, they make it a price
    CURRENCY_WORDS: Iterable[str] = (
        "dollar",
        "dollars",
        "usd",
        "euro",
        "euros",
        "eur",
        "pound",
        "pounds",
        "gbp",
        "bucks",
    )
    # Query words that name no product and are never expanded or corrected into catalog words ("cheap
    # backpack" is not a "stunt" backpack). None = the built-in English list (understanding/prices.py).
    SHOPPING_WORDS: Iterable[str] | None = None
    TYPO_CORRECTION: bool = True  # unknown query words -> the nearest catalog word (edit distance 1 or 2)
    # Vector search.
    HNSW_M: int = 16
    HNSW_EF_CONSTRUCTION: int = 64
    HNSW_EF_SEARCH: int = 100
    HNSW_MAX_SCAN_TUPLES: int = 20000
    EXACT_SEARCH_MAX_ROWS: int = 5000  # a filter matching at most this many rows is searched exactly
    # A larger filter: the HNSW index gives up to this many nearest rows unfiltered, the filter is checked
    # on them (falls back to exact search when fewer than the candidate count pass).
    FILTERED_ANN_DEPTH: int = 5000
    # Read replicas (catalog_search/replicas.py): Django database aliases of hot standbys that searches,
    # suggestions and similar products read from, in order of preference; the primary answers when none
    # is usable. Writes, the outbox, the admin and the workers always use the primary. () = the primary only.
    SEARCH_DATABASES: Sequence[str] = ()
    # A standby further behind than this is skipped (so a search never shows what the primary changed
    # longer ago than this, as far as the last check, at most REPLICA_CHECK_SECONDS old, can tell).
    REPLICA_MAX_LAG_SECONDS: float = 30.0
    # Indexing pipeline (outbox -> Celery; see docs/indexing.md).
    INDEX_BATCH_SIZE: int = 64  # objects per indexing task
    OUTBOX_LEASE_SECONDS: int = 30  # a claimed row is retried this long after its worker stopped renewing it
    SWEEP_AFTER_SECONDS: int = 60  # the sweep re-enqueues outbox rows untouched for this long
    MAX_ATTEMPTS: int = 5  # after this many failed attempts an object is left for a human (shown as failed)
    BROKER_RETRY_AFTER_SECONDS: float = 30  # after a failed enqueue, saves skip the broker for this long
    # Training: a dotted path to callable(checkpoint_dir) -> dict of metrics, printed after `train`.
    TRAIN_EVALUATION: str | None = None
    # HTTP API throttling (DRF rate strings like "120/minute"; None disables). Per client IP or user.
    THROTTLE_TEXT: str | None = "120/minute"
    THROTTLE_IMAGE: str | None = "30/minute"
    # Suggestions while typing (GET /api/suggest/): a request per keystroke or two, hence a rate of its own.
    THROTTLE_SUGGEST: str | None = "600/minute"
    THROTTLE_EVENTS: str | None = "300/minute"  # POST /api/events/ (clicks, adds to cart) per client
    # Search analytics (analytics/): every API search and the page's clicks, off the request path.
    ANALYTICS: bool = True
    ANALYTICS_FLUSH_SECONDS: float = 1.0  # how often a process writes what it recorded
    ANALYTICS_RETENTION_DAYS: int = 90  # older searches and interactions are purged (tasks.purge_analytics)
    ANALYTICS_USER_IDS: bool = False  # record the signed-in user's id with a search (off: anonymous ids only)
    SUGGEST_PRODUCTS: int = 4  # products a suggestion response lists by default (its `products` parameter)
    # Popular past queries as suggestions (retrieval/popular.py, from search analytics): the last N days', those
    # at least this many browsers searched (one shopper's query is never shown to another).
    SUGGEST_POPULAR: bool = True
    SUGGEST_POPULAR_DAYS: int = 30
    SUGGEST_POPULAR_MIN_VISITORS: int = 2
    # How the app is served, for the connection budget check (catalog_search.W006): {"web_processes": N,
    # "threads": T, "worker_processes": W}; None: not checked.
    DEPLOYMENT: dict | None = None
    # Limits.
    MAX_QUERY_LENGTH: int = 512
    MAX_K: int = 100
    MAX_OFFSET: int = 1000
    MAX_IMAGE_PIXELS: int = 40_000_000
    MAX_IMAGE_BYTES: int = 10 * 1024 * 1024
    MAX_IMAGE_SIDE: int = 1024  # decoded images are downscaled to this longest side before encoding


DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Settings)}
_TYPES = typing.get_type_hints(Settings)


def raw(name: str) -> Any:
    """One setting as the project wrote it (or the documented default)."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown catalog_search setting {name!r}")
    return getattr(django_settings, "CATALOG_SEARCH", {}).get(name, DEFAULTS[name])


def _convert(name: str, value: Any) -> Any:
    """``value`` as the type its key declares: numbers from numbers or numeric strings, flags by truth."""
    kind = _TYPES[name]
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if value is None and type(None) in options:
        return None
    target = next((t for t in (int, float, bool) if t in options), None)
    if target is None or (target is not bool and isinstance(value, target) and not isinstance(value, bool)):
        return value
    if target is bool:
        return bool(value)
    if int in options and str in options:  # MINIMUM_SHOULD_MATCH: a count or a percentage string
        return value
    try:
        return target(value)
    except (TypeError, ValueError):
        noun = "an integer" if target is int else "a number"
        raise ImproperlyConfigured(f"CATALOG_SEARCH[{name!r}] must be {noun}, got {value!r}.") from None


def problems() -> list[str]:
    """Why some values cannot be read as their declared type (the system check reports them)."""
    found = []
    for name in DEFAULTS:
        try:
            _convert(name, raw(name))
        except ImproperlyConfigured as exc:
            found.append(str(exc))
    return found


@cache
def settings() -> Settings:
    """Every setting, converted once (reloaded when the CATALOG_SEARCH setting changes)."""
    return Settings(**{name: _convert(name, raw(name)) for name in DEFAULTS})


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "CATALOG_SEARCH":
        settings.cache_clear()


setting_changed.connect(_reload, dispatch_uid="catalog_search_settings")
