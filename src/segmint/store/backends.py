"""What differs between the registry's two stores, one ``Backend`` each, chosen by the URL's
scheme (``BACKENDS``, keyed by SQLAlchemy's backend name; the same shape as mlflow's
scheme-keyed store registries):

- **SQLite** (the default, a file in the workspace): WAL mode so readers never block the writer,
  a busy timeout, write transactions that take the write lock up front (``BEGIN IMMEDIATE``, so
  two writers never deadlock upgrading a read lock), and "database is locked" reported as
  transient so the caller retries it; foreign keys on.
- **PostgreSQL** through ``postgresql+psycopg://`` (psycopg 3): ordinary transactions, a connect
  timeout so an unreachable server fails in seconds, an advisory lock around migrations, and
  serialisation failures and deadlocks reported as transient.

Both upsert tags natively and serialise JSON without NaN.
"""

from __future__ import annotations

import json
import math
import sqlite3
from abc import ABC, abstractmethod
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from segmint.store.schema import tags_table

__all__ = ["BACKENDS", "Backend", "PostgreSQL", "SQLite", "driver_error"]

# Key of the PostgreSQL advisory lock held while migrating: "segmint" in ASCII.
_PG_MIGRATION_LOCK = int.from_bytes(b"segmint", "big")


def driver_error(exc: BaseException) -> BaseException:
    """The database driver's own exception inside a SQLAlchemy one (else ``exc`` itself)."""
    return getattr(exc, "orig", None) or exc


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


class Backend(ABC):
    """What differs between stores: engine options, write transactions, the migration lock,
    tag upserts and which errors are worth retrying."""

    name = ""

    @abstractmethod
    def create_engine(self, url: URL, connect_timeout: float) -> Engine:
        """The engine for ``url`` with this store's connection settings."""

    def begin_write(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Called on a fresh connection before a write transaction begins."""

    def lock_for_migration(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Called first inside the migration transaction; serialises concurrent first uses."""

    @abstractmethod
    def upsert_tag(self, conn: Connection, tag: str, run_id: str) -> None:
        """Point ``tag`` at ``run_id``, whichever run held it before."""

    @abstractmethod
    def is_transient(self, exc: BaseException) -> bool:
        """Whether the failed transaction may simply be run again."""


class SQLite(Backend):
    name = "sqlite"
    busy_timeout_ms = 5_000

    def create_engine(self, url: URL, connect_timeout: float) -> Engine:
        engine = sa.create_engine(
            url, connect_args={"timeout": self.busy_timeout_ms / 1000}, json_serializer=_dumps
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # The driver's own transaction handling is switched off so that SQLAlchemy's
            # "begin" event below decides how each transaction starts.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("segmint_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def begin_write(self, conn: Connection) -> None:
        # Take the write lock when the transaction starts: a deferred transaction that reads and
        # then writes can fail at once with "database is locked" instead of waiting.
        conn.execution_options(segmint_write=True)

    def upsert_tag(self, conn: Connection, tag: str, run_id: str) -> None:
        from sqlalchemy.dialects.sqlite import insert

        stmt = insert(tags_table).values(tag=tag, run_id=run_id)
        conn.execute(stmt.on_conflict_do_update(index_elements=["tag"], set_={"run_id": run_id}))

    def is_transient(self, exc: BaseException) -> bool:
        orig = driver_error(exc)
        if not isinstance(orig, sqlite3.OperationalError):
            return False
        code = getattr(orig, "sqlite_errorcode", None)
        text = str(orig).lower()
        return (
            code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            or "database is locked" in text
            or "database is busy" in text
            or "database table is locked" in text
        )


class PostgreSQL(Backend):
    name = "postgresql"

    def create_engine(self, url: URL, connect_timeout: float) -> Engine:
        connect_args: dict[str, Any] = {"application_name": "segmint"}
        if "connect_timeout" not in url.query:
            # libpq counts whole seconds and treats anything below 2 as 2.
            connect_args["connect_timeout"] = max(2, math.ceil(connect_timeout))
        return sa.create_engine(
            url, pool_pre_ping=True, connect_args=connect_args, json_serializer=_dumps
        )

    def lock_for_migration(self, conn: Connection) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})

    def upsert_tag(self, conn: Connection, tag: str, run_id: str) -> None:
        from sqlalchemy.dialects.postgresql import insert

        stmt = insert(tags_table).values(tag=tag, run_id=run_id)
        conn.execute(stmt.on_conflict_do_update(index_elements=["tag"], set_={"run_id": run_id}))

    def is_transient(self, exc: BaseException) -> bool:
        # serialization_failure and deadlock_detected: the transaction is safe to run again.
        return getattr(driver_error(exc), "sqlstate", None) in ("40001", "40P01")


BACKENDS: dict[str, type[Backend]] = {"sqlite": SQLite, "postgresql": PostgreSQL}
