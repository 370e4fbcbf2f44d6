"""The registry's connection to its database: a lazy engine, the schema brought up to date on
first use, and transactions retried while the store is busy.

``Database(url)`` parses and checks the URL at once (``urls.parse_database_url``) and picks the
store's ``Backend`` by its scheme, but connects only on first use, when it also migrates the
schema to the newest revision (``migrate.upgrade_to_head``) under the init lock, once per
instance. Each unit of work runs in one transaction on a pooled connection; when it fails in a
way the backend calls transient (a locked SQLite file, a PostgreSQL serialisation failure) it is
run again after a jittered, doubling pause, until ``lock_timeout`` seconds have passed.

Safe to share between threads. A forked child drops the parent's pooled connections and opens
its own (SQLAlchemy's advice); ``close()`` releases connections, and the next use reconnects.
``unavailable`` turns a failure into the ``RegistryError`` callers see, naming the URL with its
password masked.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from segmint.exceptions import RegistryError
from segmint.store.backends import BACKENDS, driver_error
from segmint.store.migrate import upgrade_to_head
from segmint.store.urls import mask_url, parse_database_url

__all__ = ["Database"]

_T = TypeVar("_T")

_open_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Pooled connections belong to the parent; the child opens its own (SQLAlchemy's advice).
    for database in list(_open_databases):
        database.forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Database:
    """A registry database at a URL; connects and migrates lazily, on first use."""

    def __init__(self, url: str | URL, *, connect_timeout: float, lock_timeout: float) -> None:
        self.url = parse_database_url(url)
        self.backend = BACKENDS[self.url.get_backend_name()]()
        self._connect_timeout = connect_timeout
        self._lock_timeout = lock_timeout
        self._engine: Engine | None = None
        self._migrated = False
        self._init_lock = threading.Lock()
        _open_databases.add(self)

    @property
    def shown_url(self) -> str:
        """The database URL with any password masked."""
        return mask_url(self.url)

    def unavailable(self, exc: BaseException) -> RegistryError:
        """The error to raise for a failure ``exc``: its first line, password masked."""
        orig = driver_error(exc)
        lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
        reason = lines[0] if lines else type(orig).__name__
        if self.url.password:
            reason = reason.replace(str(self.url.password), "***")
        return RegistryError(f"The run registry at {self.shown_url} is unavailable: {reason}")

    def forget_connections(self) -> None:
        """Drop pooled connections without closing them (they belong to the parent process)."""
        if self._engine is not None:
            self._engine.dispose(close=False)

    def ready(self) -> Engine:
        """The engine, created and the schema migrated on first call."""
        engine = self._engine
        if engine is not None and self._migrated:
            return engine
        with self._init_lock:
            if self._engine is None:
                self._engine = self.backend.create_engine(self.url, self._connect_timeout)
            if not self._migrated:
                upgrade_to_head(self._engine, self._transaction, self.backend, self.shown_url)
                self._migrated = True
            return self._engine

    def _transaction(self, engine: Engine, work: Callable[[Connection], _T], write: bool) -> _T:
        delay = 0.02
        deadline = time.monotonic() + self._lock_timeout
        while True:
            try:
                with engine.connect() as conn:
                    if write:
                        self.backend.begin_write(conn)
                    with conn.begin():
                        return work(conn)
            except (sa_exc.DBAPIError, sqlite3.Error) as exc:
                if not self.backend.is_transient(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    def read(self, work: Callable[[Connection], _T]) -> _T:
        """``work`` in a read transaction."""
        return self._transaction(self.ready(), work, write=False)

    def write(self, work: Callable[[Connection], _T]) -> _T:
        """``work`` in a write transaction (on SQLite, one that holds the write lock from the
        start)."""
        return self._transaction(self.ready(), work, write=True)

    def close(self) -> None:
        """Release every pooled connection."""
        with self._init_lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
