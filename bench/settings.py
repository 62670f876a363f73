"""Settings of the API load benchmark: the demo's settings on a throwaway database and var folder.

``bench/load.py`` starts the embedded PostgreSQL, builds the model and exports ``DATABASE_URL``,
``CATALOG_SEARCH_VAR`` and ``CATALOG_SEARCH_MODEL`` before anything imports this module (its own
process and the gunicorn workers alike), so the demo's ``var/`` data is never touched.
"""

import os

from django.core.exceptions import ImproperlyConfigured

for _name in ("DATABASE_URL", "CATALOG_SEARCH_VAR", "CATALOG_SEARCH_MODEL"):
    if not os.environ.get(_name):
        raise ImproperlyConfigured(f"bench.settings needs {_name}; run the benchmark with `python bench/load.py`.")

from demo_project.settings import *  # noqa: E402,F403

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
CATALOG_SEARCH = {
    "MODEL": os.environ["CATALOG_SEARCH_MODEL"],
    "THROTTLE_TEXT": None,
    "THROTTLE_IMAGE": None,
}
# No worker runs during the benchmark: indexing is synchronous, and a save must never reach a real broker.
CELERY_BROKER_URL = "memory://"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"catalog_search": {"handlers": ["console"], "level": "WARNING"}},
}
