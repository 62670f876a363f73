"""Tables the staff edit in the admin and every search reads (synonyms, query rules): each process keeps a
copy, checks the table's stamp (a few aggregate numbers: row count, latest change) at most every
``refresh`` seconds, and reads the rows again only when the stamp moved. A change saved in one process
reaches every other within that time; the saving process forgets its copy at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import DatabaseError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ProcessCopy(Generic[T]):
    """This process's copy of what ``read`` builds from a table; ``stamp`` says whether the table moved."""

    def __init__(
        self, name: str, *, stamp: Callable[[], object], read: Callable[[], T], refresh: Callable[[], float], empty: T
    ) -> None:
        self._name, self._stamp, self._read, self._refresh, self._empty = name, stamp, read, refresh, empty
        self._lock = threading.Lock()
        self._checked = -1e9
        self._seen: object = None
        self._value: T | None = None
        self.version = 0  # changes with the copy: what is built from it is rebuilt then

    def get(self) -> T:
        now = time.monotonic()
        if self._value is not None and now - self._checked < self._refresh():
            return self._value
        try:
            stamp = self._stamp()
            with self._lock:
                if self._value is None or stamp != self._seen:
                    self._value, self._seen = self._read(), stamp
                    self.version += 1
                self._checked = now
                return self._value
        except DatabaseError as exc:
            # The database is down (or the search's standby failed): the search goes on with the copy this
            # process has, or without any (``empty``); the table is checked again after the next interval.
            logger.warning("catalog_search: %s not refreshed: %s", self._name, exc)
            with self._lock:
                self._value = self._empty if self._value is None else self._value
                self._checked = now
                return self._value

    def forget(self) -> None:
        """The next ``get`` checks the table (a writer in this process calls it after saving)."""
        with self._lock:
            self._checked = -1e9
            self._seen = None
