"""Which database the running search reads from: one alias per search, for every statement it makes.

The search path (retrieval/, the query fields' values, the active encoder's row) reads through
``connection()`` and ``using()`` instead of ``django.db.connection``, so that ``replicas.run`` can point a
whole search at one hot standby, or at the primary when none is usable (docs/architecture.md, *Read
replicas*). The choice is a context variable: it follows the search into ``contextvars.copy_context()``
(the parallel keyword statement's helper thread) and never leaks into another request's thread.

Outside a search (writes, the workers, the admin) nothing is chosen: ``connection()`` is Django's default
connection and querysets keep Django's routing, exactly as without read replicas.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Manager, QuerySet

_reading: ContextVar[str | None] = ContextVar("catalog_search_reading", default=None)


def alias() -> str | None:
    """The alias the running search reads from; None outside one (or without SEARCH_DATABASES)."""
    return _reading.get()


def connection() -> BaseDatabaseWrapper:
    """This thread's connection to the running search's database (Django's default one outside a search)."""
    return connections[_reading.get() or DEFAULT_DB_ALIAS]


def using(source: QuerySet | Manager) -> QuerySet:
    """``source`` on the running search's database; Django's routing, as before, outside a search."""
    chosen = _reading.get()
    if chosen is not None:
        return source.using(chosen)
    return source.all() if isinstance(source, Manager) else source


@contextlib.contextmanager
def reading(name: str | None) -> Iterator[None]:
    """Every statement of the search path inside reads ``name`` (None: Django's default, as outside)."""
    token = _reading.set(name)
    try:
        yield
    finally:
        _reading.reset(token)
