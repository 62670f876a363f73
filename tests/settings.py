"""Test settings: the demo's settings plus a test-only app, on a throwaway embedded PostgreSQL.

The throwaway server is started here (not in a fixture) so DATABASES is right before Django sets up,
and its URL is exported so subprocesses (Celery workers, live servers) use the same server.
"""

import json
import os
import tempfile
from pathlib import Path

from demo_project.embedded_db import start_embedded

if not os.environ.get("DATABASE_URL"):
    _pgdata = Path(tempfile.mkdtemp(prefix="catalog-search-test-")) / "pgdata"
    os.environ["DATABASE_URL"] = start_embedded(_pgdata, delete_on_exit=True)
os.environ.setdefault("CATALOG_SEARCH_VAR", tempfile.mkdtemp(prefix="catalog-search-var-"))
if not os.environ.get("CELERY_BROKER_URL"):
    from tests.services import RedisServer

    REDIS = RedisServer()
    REDIS.start()
    os.environ["CELERY_BROKER_URL"] = REDIS.url

from demo_project.settings import *  # noqa: E402,F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No persistent connections in the test process; a server under test may ask for the demo's (60 s).
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("TEST_CONN_MAX_AGE", "0"))  # noqa: F405

# A tiny random-weight CLIP: the real loading and encoding path, in milliseconds.
from tests.tiny_models import build_tiny_clip  # noqa: E402

CATALOG_SEARCH = {"MODEL": os.environ.get("CATALOG_SEARCH_MODEL") or str(build_tiny_clip(VAR_DIR / "tiny-clip"))}  # noqa: F405
# Analytics are written when a test flushes them, never by the writer thread on a connection of its own
# (outside a test's transaction); tests/test_analytics.py tests the thread with a short interval.
CATALOG_SEARCH["ANALYTICS_FLUSH_SECONDS"] = 3600
# Worker subprocesses get short leases and sweeps through this variable (see tests/worker.py).
CATALOG_SEARCH.update(json.loads(os.environ.get("CATALOG_SEARCH_JSON", "{}")))
MEDIA_ROOT = VAR_DIR / "media"  # noqa: F405
