"""The demo's embedded PostgreSQL: stopping the server the demo leaves running (``./scripts/demo.sh stop``)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from demo_project.embedded_db import stop_embedded

ROOT = Path(__file__).resolve().parent.parent
START = "import sys; from pathlib import Path; from demo_project.embedded_db import start_embedded; start_embedded(Path(sys.argv[1]))"


def _postmaster(data: Path) -> psutil.Process:
    return psutil.Process(int((data / "postmaster.pid").read_text().split()[0]))


def test_stop_embedded_stops_the_server_a_process_left_running() -> None:
    data = Path(tempfile.mkdtemp(prefix="catalog-search-stop-")) / "pgdata"
    try:
        # Started by another process that exits, as the demo's commands do: the server stays up after it.
        subprocess.run([sys.executable, "-c", START, str(data)], cwd=ROOT, check=True, timeout=120)
        server = _postmaster(data)
        assert server.is_running()

        assert stop_embedded(data) is True
        assert not server.is_running()
        assert stop_embedded(data) is False  # nothing left to stop

        # The data survives a stop: the next start serves it again.
        subprocess.run([sys.executable, "-c", START, str(data)], cwd=ROOT, check=True, timeout=120)
        assert _postmaster(data).is_running()
        assert stop_embedded(data) is True
    finally:
        with contextlib.suppress(OSError, psutil.Error):  # a failed assertion must not leave a server behind
            _postmaster(data).kill()
        shutil.rmtree(data.parent, ignore_errors=True)


def test_stop_embedded_without_a_server(tmp_path: Path) -> None:
    assert stop_embedded(tmp_path / "pgdata") is False  # never started
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "postmaster.pid").write_text("not a pid\n")
    assert stop_embedded(tmp_path / "pgdata") is False  # a damaged pid file
    (tmp_path / "pgdata" / "postmaster.pid").write_text(f"{psutil.Process().pid}\n")
    assert stop_embedded(tmp_path / "pgdata") is False  # a pid reused by another program: left alone
