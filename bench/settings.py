"""Settings of the benchmarks: the demo's settings on a benchmark database and var folder.

The scripts in ``bench/`` start the embedded PostgreSQL, build the model and export ``DATABASE_URL``,
``CATALOG_SEARCH_VAR`` and ``CATALOG_SEARCH_MODEL`` before anything imports this module (their own
process and the gunicorn / Celery children alike), so the demo's ``var/`` data is never touched.

Optional, for single benchmarks:
- ``BENCH_CATALOG_SEARCH``: JSON merged into ``CATALOG_SEARCH`` (e.g. ``{"QUERY_CACHE": null}``).
- ``BENCH_CACHE_URL``: a Redis URL; the ``default`` cache becomes Django's RedisCache there
  (``BENCH_CACHE_PREFIX``: its key prefix, so two servers sharing one Redis db never share entries).
- ``BENCH_CELERY_BROKER_URL``: a real broker for a benchmark that runs a Celery worker.
"""

import json
import os

from django.core.exceptions import ImproperlyConfigured

for _name in ("DATABASE_URL", "CATALOG_SEARCH_VAR", "CATALOG_SEARCH_MODEL"):
    if not os.environ.get(_name):
        raise ImproperlyConfigured(f"bench.settings needs {_name}; run a benchmark, e.g. `python bench/load.py`.")

from demo_project.settings import *  # noqa: E402,F403

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
CATALOG_SEARCH = {
    "MODEL": os.environ["CATALOG_SEARCH_MODEL"],
    "THROTTLE_TEXT": None,
    "THROTTLE_IMAGE": None,
    **json.loads(os.environ.get("BENCH_CATALOG_SEARCH", "{}")),
}
if os.environ.get("BENCH_CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["BENCH_CACHE_URL"],
            "KEY_PREFIX": os.environ.get("BENCH_CACHE_PREFIX", ""),
        }
    }
# No worker runs during most benchmarks: indexing is synchronous, and a save must never reach a real broker.
CELERY_BROKER_URL = os.environ.get("BENCH_CELERY_BROKER_URL", "memory://")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"catalog_search": {"handlers": ["console"], "level": "WARNING"}},
}
