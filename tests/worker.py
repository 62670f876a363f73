"""Run a real Celery worker (with embedded beat) as a subprocess against the test database and the
test run's private Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

FAST = {  # short leases and sweeps so recovery happens within seconds
    "OUTBOX_LEASE_SECONDS": 3,
    "SWEEP_AFTER_SECONDS": 1,
    "BROKER_RETRY_AFTER_SECONDS": 1,
}


def test_database_url() -> str:
    """DATABASE_URL of the database the tests are using (pytest-django's test_ database)."""
    parts = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(parts._replace(path="/" + connection.settings_dict["NAME"]))


class Worker:
    def __init__(self, *, model: str | None = None, settings: dict | None = None, beat: bool = True):
        self.log = Path(tempfile.mkstemp(prefix="celery-worker-", suffix=".log")[1])
        self.env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=test_database_url(),
            CATALOG_SEARCH_JSON=json.dumps({**FAST, **(settings or {})}),
            CATALOG_SEARCH_SWEEP_SECONDS="1",
            CELERY_VISIBILITY_TIMEOUT="5",
            PYTHONUNBUFFERED="1",
        )
        if model:
            self.env["CATALOG_SEARCH_MODEL"] = model
        self.beat = beat
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Worker:
        schedule = tempfile.mktemp(prefix="celerybeat-")
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "demo_project",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if self.beat:
            command += ["-B", "--schedule", schedule]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log.read_text(errors="replace"):
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(condition, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
