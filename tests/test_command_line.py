"""``manage.py catalog_search`` as a shop runs it, in a subprocess: Django's options after the
subcommand, Ctrl-C while waiting for the workers, and a model that can come from nowhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from huggingface_hub import constants

from catalog_search.encoding import encoders
from catalog_search.exceptions import EncoderUnavailable
from tests import worker

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=worker.test_database_url())
    return subprocess.Popen(
        [sys.executable, "-m", "django", "catalog_search", *args],
        cwd=worker.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_django_options_are_accepted_after_the_subcommand():
    done = manage("status", "--settings", "tests.settings", "--verbosity", "0", "--traceback")
    output, _ = done.communicate(timeout=120)
    assert done.returncode == 0, output
    assert "Configured model" in output


def test_ctrl_c_while_waiting_leaves_the_work_queued_without_a_traceback(make_product):
    from demo_project.celery import app

    make_product("Waiting tote")
    app.control.purge()
    # Started with SIGINT ignored, as a process started in the background is: the wait still stops on it.
    run = manage("reindex", "--all", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = []
    for line in run.stdout:
        lines.append(line)
        if line.startswith("Queued"):
            break
    time.sleep(1.0)
    run.send_signal(signal.SIGINT)
    output = "".join(lines) + run.communicate(timeout=60)[0]
    app.control.purge()
    assert run.returncode == 130, output
    assert "Stopped waiting. The work stays queued" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output


def test_a_hub_model_without_the_hub_fails_fast_once(monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    encoders.clear_cache()
    try:
        started = time.monotonic()
        with pytest.raises(EncoderUnavailable, match="does not answer") as first:
            encoders.get_encoder("catalog-search-tests/not-a-cached-model")
        assert time.monotonic() - started < 10  # transformers' own retries take about 26 s here
        assert "save_pretrained()" in first.value.message
        with pytest.raises(EncoderUnavailable) as second:  # remembered: the next batch does not ask again
            encoders.get_encoder("catalog-search-tests/not-a-cached-model")
        assert second.value is first.value
    finally:
        encoders.clear_cache()
