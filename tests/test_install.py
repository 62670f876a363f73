"""The wheel in someone else's shop: build it, install it into a fresh venv (no source tree on the path),
and run a project of another shape (tests/install_shop/: ForeignKey, many-to-many, photos on 12 of 201
items, its own Celery app and queue) through check, migrate, a real Celery worker, keyword, filter and
photo search, the admin status page, and a renamed brand.

It uses the test run's PostgreSQL (a database of its own) and Redis (a queue of its own), and the tiny
random-weight CLIP of tests/settings.py as the shop's local model. pip reuses the machine's wheels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SHOP = Path(__file__).resolve().parent / "install_shop"


def run(*args: str | Path, cwd: Path, env: dict, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A fresh venv with the built wheel and a copy of the shop project; yields (python, project, env)."""
    base = tmp_path_factory.mktemp("install")
    started = time.monotonic()
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        base / "dist",
        ROOT,
        cwd=base,
        env=os.environ,
    )
    (wheel,) = (base / "dist").glob("catalog_search-*.whl")
    run(sys.executable, "-m", "venv", base / "venv", cwd=base, env=os.environ)
    python = base / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # The CPU build of torch first (as the README says), then the wheel with the Redis broker extra.
    run(python, "-m", "pip", "install", "-q", "torch==2.13.0", f"{wheel}[redis]", cwd=base, env=env)
    project = base / "project"
    shutil.copytree(SHOP, project)
    database = f"shop_install_{uuid.uuid4().hex[:8]}"
    server = os.environ["DATABASE_URL"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    broker = urlsplit(os.environ["CELERY_BROKER_URL"])
    db = settings.DATABASES["default"]
    env.update(
        DJANGO_SETTINGS_MODULE="shopproj.settings",
        SHOP_DB_NAME=database,
        SHOP_DB_USER=db["USER"],
        SHOP_DB_PASSWORD=db["PASSWORD"],
        SHOP_DB_HOST=db["HOST"],
        SHOP_DB_PORT=str(db["PORT"]),
        SHOP_BROKER_URL=urlunsplit(broker._replace(path="/7")),  # a Redis database of its own
        SHOP_MODEL=str(settings.CATALOG_SEARCH["MODEL"]),
        PYTHONUNBUFFERED="1",
    )
    yield python, project, env, started
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def action(shop, name: str, *args: str) -> dict:
    python, project, env, _ = shop
    return json.loads(run(python, "shop_actions.py", name, *args, cwd=project, env=env).strip().splitlines()[-1])


def wait_indexed(shop, timeout: float = 180) -> dict:
    python, project, env, _ = shop
    deadline = time.monotonic() + timeout
    while True:
        status = json.loads(run(python, "manage.py", "catalog_search", "status", "--json", cwd=project, env=env))
        (model,) = status["models"]
        if model["pending"] == 0 and model["indexed"] == model["total"]:
            return model
        assert time.monotonic() < deadline, f"not indexed in {timeout} s: {model}"
        time.sleep(1)


def test_the_wheel_runs_in_a_shop_of_another_shape(shop):
    python, project, env, started = shop
    assert "/venv/" in action(shop, "where")["catalog_search"]  # the installed wheel, not this tree
    checked = run(python, "manage.py", "check", cwd=project, env=env)
    assert "no issues" in checked
    run(python, "manage.py", "makemigrations", "catalog", cwd=project, env=env)
    run(python, "manage.py", "migrate", "-v", "0", cwd=project, env=env)
    log = (project / "worker.log").open("w")
    worker = subprocess.Popen(
        [python, "-m", "celery", "-A", "shopproj", "worker", "--pool=solo", "-Q", "shop_install", "--loglevel=INFO"],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert action(shop, "create") == {"items": 201}
        wait_indexed(shop)
        first = action(shop, "search", "acme")
        print(f"\nfrom an empty venv to the first search: {time.monotonic() - started:.0f} s")
        # The brand is text through a ForeignKey: every Acme item, and only those (no text names it).
        assert first["brands"] == ["Acme"] and first["facets"]["brand__name"] == {"Acme": 101}
        organic = json.dumps({"tags__name": "organic", "brand__name": "Globex"})  # many-to-many and ForeignKey
        expected = action(shop, "count", "bag", organic)["count"]
        bags = action(shop, "search", "bag", "bm25", organic)
        assert expected > 0 and len(bags["titles"]) == expected and bags["brands"] == ["Globex"]
        # Multi-select facets: every tag counted under the other filters (the brand), as if it were selected.
        for tag, count in bags["facets"]["tags__name"].items():
            assert (
                count == action(shop, "count", "bag", json.dumps({"tags__name": tag, "brand__name": "Globex"}))["count"]
            )
        assert bags["facets"]["tags__name"]["organic"] == expected
        # Query understanding from this shop's own values: a tag through a many-to-many, a price phrase.
        cheap = action(shop, "search", "organic under 20")
        assert cheap["understood"] == {"tags__name": ["organic"], "price__lte": 20}
        assert (
            len(cheap["prices"])
            == action(shop, "count", "", json.dumps({"tags__name": "organic", "price__lte": 20}))["count"]
        )
        assert cheap["prices"] and max(cheap["prices"]) <= 20
        photo = action(shop, "search", "", "vector", "{}", "3")
        assert photo["titles"][0].endswith(" 3")
        assert action(shop, "admin_status_page") == {"status": 200, "rebuild": True}

        assert action(shop, "rename_brand", "Acme", "Initech") == {"items": 101}
        wait_indexed(shop, timeout=60)  # the worker has no beat: only the save's own hook enqueued them
        renamed = action(shop, "search", "initech")
        assert renamed["brands"] == ["Initech"] and renamed["facets"]["brand__name"] == {"Initech": 101}
        assert action(shop, "search", "acme")["titles"] == []
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
