"""A private Redis server for the test run, so tests never touch the demo's or anyone's broker."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """``redis-server`` on a loopback port; ``stop()`` and ``start()`` simulate a broker outage."""

    def __init__(self, port: int | None = None):
        self.binary = shutil.which("redis-server")
        if not self.binary:
            raise RuntimeError("redis-server is not installed (Debian package redis-server); the tests need it")
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None


class Standby:
    """A streaming hot standby of a local PostgreSQL (the embedded test server), made with that server's own
    binaries: ``pg_basebackup -R`` copies the cluster and writes ``standby.signal`` and ``primary_conninfo``,
    ``pg_ctl`` starts it on a Unix socket of its own. ``stop("immediate")`` is a crash (no shutdown
    checkpoint, sessions cut); ``start()`` again resumes streaming; ``promote()`` makes it a primary."""

    def __init__(self, primary: dict, root: Path, bin_dir: Path, data_directory: Path):
        """``primary``: the primary's Django settings (HOST a socket directory); ``data_directory`` its
        ``data_directory`` (as root, the standby runs as the user that owns it: PostgreSQL refuses root)."""
        self.primary, self.bin_dir = primary, bin_dir
        self.root, self.data, self.log = root, root / "data", root / "standby.log"
        self.port = free_port()  # only names the socket file (.s.PGSQL.<port>): no TCP listener
        owner = data_directory.stat()
        self.run_as = {"user": owner.st_uid, "group": owner.st_gid} if os.geteuid() == 0 else {}
        if self.run_as:
            os.chown(root, owner.st_uid, owner.st_gid)
        atexit.register(self.remove)

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        # Output to a file, not a pipe: a server started by pg_ctl could keep a pipe open (and the call waiting).
        with tempfile.TemporaryFile() as errors:
            done = subprocess.run(
                [str(self.bin_dir / program), *args],
                stdout=subprocess.DEVNULL,
                stderr=errors,
                timeout=timeout,
                **self.run_as,
            )
            if done.returncode:
                errors.seek(0)
                raise RuntimeError(
                    f"{program} {' '.join(args)} failed: {errors.read().decode(errors='replace')[-2000:]}"
                )

    def create(self) -> None:
        """Copy the primary (a fast checkpoint, WAL streamed alongside) and start the copy."""
        self._run(
            "pg_basebackup",
            *("-h", self.primary["HOST"], "-p", str(self.primary["PORT"] or 5432), "-U", self.primary["USER"]),
            *("-D", str(self.data), "-R", "-c", "fast", "-X", "stream", "--no-sync"),
        )
        self.start()

    def start(self) -> None:
        options = f"-h '' -k {self.root} -p {self.port} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError, RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def settings(self) -> dict:
        """A Django DATABASES entry for the standby: the primary's, on the standby's socket."""
        return {**self.primary, "HOST": str(self.root), "PORT": str(self.port), "OPTIONS": {**self.primary["OPTIONS"]}}

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """``sql`` on the standby through a connection of its own (not Django's)."""
        import psycopg

        with psycopg.connect(
            host=str(self.root), port=self.port, user=self.primary["USER"], dbname=self.primary["NAME"], autocommit=True
        ) as conn:
            return conn.execute(sql, params).fetchall()
