"""Read replicas: which copy of the database a search reads, and the same search again on the next copy
when a standby fails under it.

``CATALOG_SEARCH["SEARCH_DATABASES"]`` lists Django aliases of hot standbys (PostgreSQL streaming
replication), in order of preference. A search reads the first one that is usable, else the primary:

- **reachable**: a refused connection (or any connection-level error) marks it down for ``DOWN_SECONDS``;
  then the next check tries it again;
- **still a standby** (``pg_is_in_recovery()``): a promoted copy follows no primary any more (after a
  failover, or someone promoted it by hand), so its rows drift from the primary's: skipped until it is a
  standby again (rewound and restarted with ``standby.signal``);
- **at most ``REPLICA_MAX_LAG_SECONDS`` behind**: 0 when it has replayed everything it received while its
  WAL receiver is streaming (the replay timestamp alone goes stale when the primary is idle); otherwise the
  age of the last transaction it replayed (not streaming: it cannot know what the primary did since, so a
  disconnected standby ages until it is skipped).

Each process checks a standby at most every ``CHECK_SECONDS`` (one statement, made by whichever search
first finds the last check too old; sooner when the lag measured then, plus the time since, could have
passed the limit), so other searches pay nothing for the choice.

A search that fails on a standby with a connection-level error (``OperationalError``, ``InterfaceError``:
the server went away or restarted, or cancelled a statement for a recovery conflict) marks it down and runs
again, from the start, on the next copy: a search writes nothing, so running it twice is safe. Other
errors (programming errors, bad data) are raised at once: every copy would fail the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connections, router

from catalog_search import conf, databases
from catalog_search.models import Document

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHECK_SECONDS = 2.0  # how old a usable standby's last check may be
DOWN_SECONDS = 10.0  # how long a down, promoted or missing alias is left alone before it is checked again

# Whether the copy is in recovery, and how many seconds it is behind (NULL when it cannot tell: it has
# replayed no transaction since it started and is not caught up). pg_stat_wal_receiver shows its status only
# to roles with pg_read_all_stats; other roles see the row (a receiver is running), taken as streaming.
LAG_SQL = """
    SELECT pg_is_in_recovery(),
           CASE WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn()
                 AND EXISTS (SELECT FROM pg_stat_wal_receiver WHERE coalesce(status, 'streaming') = 'streaming')
                THEN 0
                ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END
"""


@dataclass(frozen=True)
class Health:
    """What the last check of one search database found."""

    alias: str
    state: str  # "up", "lagging", "promoted", "down" or "missing" (not in DATABASES)
    lag: float | None  # seconds behind the primary; None when unknown
    checked_at: float  # time.monotonic() of the check
    error: str = ""

    @property
    def usable(self) -> bool:
        return self.state == "up"

    def as_dict(self) -> dict[str, Any]:
        lag = None if self.lag is None else round(self.lag, 3)
        return {"alias": self.alias, "state": self.state, "lag_seconds": lag, "error": self.error}


_lock = threading.Lock()
_health: dict[str, Health] = {}


def search_databases() -> tuple[str, ...]:
    """The standbys searches may read, in order (the primary left out: it is always the last resort)."""
    names = conf.settings().SEARCH_DATABASES
    names = (names,) if isinstance(names, str) else tuple(names or ())
    return tuple(name for name in names if name != primary())


def primary() -> str:
    """The database the index is written to (Django's routing for writes; "default" without routers)."""
    return router.db_for_write(Document)


def run(fn: Callable[[], T]) -> T:
    """``fn()`` (a search, suggestions, similar products) reading the first usable search database, again
    on the next one if a standby fails under it with a connection-level error, finally on the primary.
    Without SEARCH_DATABASES, or inside a search that chose already, it is just ``fn()``."""
    replicas = search_databases() if databases.alias() is None else ()
    if not replicas:
        return fn()
    for alias in replicas:
        if not current(alias).usable:
            continue
        with databases.reading(alias):
            try:
                return fn()
            except (OperationalError, InterfaceError) as exc:
                mark_down(alias, exc)
    with databases.reading(primary()):
        return fn()


def current(alias: str) -> Health:
    """The last check of ``alias``, checked again first when it is too old to trust."""
    health = _health.get(alias)
    if health is None or _expired(health, time.monotonic()):
        health = _store(check(alias))
    return health


def _expired(health: Health, now: float) -> bool:
    age = now - health.checked_at
    if health.state == "up":
        # Had replay stopped right after the check, the copy would now be lag + age behind.
        return age >= CHECK_SECONDS or (health.lag or 0.0) + age > conf.settings().REPLICA_MAX_LAG_SECONDS
    return age >= (CHECK_SECONDS if health.state == "lagging" else DOWN_SECONDS)


def check(alias: str) -> Health:
    """Ask ``alias`` now whether it is a usable standby and how far behind the primary it is."""
    now = time.monotonic()
    if alias not in connections.settings:
        return Health(alias, "missing", None, now, f"{alias!r} is not in DATABASES")
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute(LAG_SQL)
            in_recovery, lag = cursor.fetchone()
    except DatabaseError as exc:
        _close(alias)
        return Health(alias, "down", None, now, _reason(exc))
    if not in_recovery:
        return Health(alias, "promoted", None, now, "not in recovery: a primary, not a standby of this one")
    lag = None if lag is None else max(0.0, float(lag))
    if lag is None or lag > conf.settings().REPLICA_MAX_LAG_SECONDS:
        return Health(alias, "lagging", lag, now)
    return Health(alias, "up", lag, now)


def mark_down(alias: str, exc: BaseException) -> None:
    """``alias`` failed under a search: leave it alone for DOWN_SECONDS (this thread's connection closed)."""
    _close(alias)
    health = _store(Health(alias, "down", None, time.monotonic(), _reason(exc)), log=False)
    logger.warning(
        "catalog_search: search database %r failed during a search, which ran again on the next copy (%s)",
        alias,
        health.error,
    )


def statuses() -> list[dict[str, Any]]:
    """Every search database checked now (for the status page), in order, then the primary."""
    found = [_store(check(alias)).as_dict() for alias in search_databases()]
    return [*found, {"alias": primary(), "state": "primary", "lag_seconds": 0.0, "error": ""}]


def forget() -> None:
    """Drop this process's checks: the next search checks every standby again (tests, after a failover)."""
    with _lock:
        _health.clear()


def _store(health: Health, log: bool = True) -> Health:
    """Keep ``health`` as this process's last check of its alias; log when the state changes (or starts
    unusable), not on every check."""
    with _lock:
        before = _health.get(health.alias)
        _health[health.alias] = health
    if log and (before.state != health.state if before is not None else not health.usable):
        lag = "" if health.lag is None else f", {health.lag:.1f} s behind"
        logger.log(
            logging.INFO if health.usable else logging.WARNING,
            "catalog_search: search database %r is %s%s %s",
            *(health.alias, health.state, lag, health.error),
        )
    return health


def _close(alias: str) -> None:
    """Close this thread's connection to ``alias`` so the next use reconnects (a broken one may not close)."""
    with contextlib.suppress(DatabaseError):
        connections[alias].close()


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
