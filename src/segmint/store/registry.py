"""The run registry: one database row per run, compare, track, clv or effect.

Why a database rather than a folder listing: many processes register runs at once (a batch of
``segmint run`` jobs, the server's workers), and each needs to add a row, later finish it, and
let readers find "the latest succeeded run" or "the run tagged prod" without scanning folders
that may be half-written. SQLAlchemy 2 (Core) talks to both supported stores, SQLite and
PostgreSQL (``backends``). ``Registry(url)`` parses and checks the URL at once (``urls``) but
connects lazily, on first use, when it also brings the schema to the newest Alembic revision
(``database``, ``migrate``).

This module holds ``Registry`` (registering, finishing, finding, listing, tagging and deleting
runs) and ``RunRecord`` (a row as read). Run ids (``runids``) are 14 lowercase Crockford
base32 characters that sort by creation time. A row left ``running`` by a process that is gone
is reported ``stale`` when read: the row records the writer's pid, host and process start time,
so a recycled pid is not mistaken for the original process (``liveness``).

Every database failure surfaces as ``RegistryError`` naming the URL with its password masked;
look-ups that find nothing raise ``RunNotFoundError`` and ambiguous id prefixes
``AmbiguousRunError``.
"""

from __future__ import annotations

import builtins
import functools
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection

from segmint.exceptions import RunNotFoundError, RunStateError, SegmintError
from segmint.store.database import Database
from segmint.store.liveness import is_stale, process_start_token
from segmint.store.queries import filters, resolve_row, row_by_id, tags_by_run
from segmint.store.runids import new_run_id, normalise_id, run_id_time
from segmint.store.schema import (
    KINDS,
    NEWEST_FIRST,
    STATUSES,
    Kind,
    Status,
    runs_table,
    tags_table,
)
from segmint.store.urls import mask_url, parse_database_url
from segmint.store.validation import check_inputs, check_name, check_tag, jsonable

__all__ = [
    "KINDS",
    "STATUSES",
    "Kind",
    "Registry",
    "RunRecord",
    "Status",
    "mask_url",
    "new_run_id",
    "parse_database_url",
    "run_id_time",
]

State = Literal["running", "succeeded", "failed", "stale"]

_MAX_ERROR_CHARS = 20_000

_T = TypeVar("_T")
_P = ParamSpec("_P")

# --------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------


class RunRecord(BaseModel):
    """One registry row as read (frozen). ``stale`` and ``state`` are computed when read."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Kind
    status: Status
    error: str | None = None
    created: AwareDatetime
    finished: AwareDatetime | None = None
    name: str | None = None
    tags: list[str] = Field(default_factory=list)
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str | None = None
    k: int | None = None
    customers: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    folder: str
    pid: int | None = None
    host: str | None = None
    stale: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def state(self) -> State:
        """``stale`` for a running row whose process is gone, else the stored status."""
        return "stale" if self.stale else self.status


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


def _guarded(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Turn database failures inside a public method into ``RegistryError``."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        registry = args[0]
        assert isinstance(registry, Registry)
        try:
            return method(*args, **kwargs)
        except SegmintError:
            raise
        except (sa_exc.SQLAlchemyError, sqlite3.Error) as exc:
            raise registry._database.unavailable(exc) from None
        except Exception as exc:
            from alembic.util import CommandError

            if isinstance(exc, CommandError):
                raise registry._database.unavailable(exc) from None
            raise

    return wrapper


class Registry:
    """The run registry at a database URL; connects and migrates lazily, on first use.

    Safe to share between threads. A forked child drops the parent's pooled connections and
    opens its own; ``close()`` releases connections (the registry reconnects if used again).
    """

    def __init__(
        self, url: str | URL, *, connect_timeout: float = 10.0, lock_timeout: float = 60.0
    ) -> None:
        self._database = Database(url, connect_timeout=connect_timeout, lock_timeout=lock_timeout)

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._database.shown_url

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._database.backend.name

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading rows ------------------------------------------------------------------------

    def _records(self, conn: Connection, rows: Sequence[sa.Row[Any]]) -> builtins.list[RunRecord]:
        if not rows:
            return []
        tags = tags_by_run(conn, [row.id for row in rows])
        return [
            RunRecord(
                id=row.id,
                kind=row.kind,
                status=row.status,
                error=row.error,
                created=row.created,
                finished=row.finished,
                name=row.name,
                tags=tags[row.id],
                inputs=row.inputs,
                config=row.config,
                config_hash=row.config_hash,
                k=row.k,
                customers=row.customers,
                metrics=row.metrics,
                folder=row.folder,
                pid=row.pid,
                host=row.host,
                stale=is_stale(row.status, row.pid, row.host, row.proc_start),
            )
            for row in rows
        ]

    def _by_id(self, conn: Connection, run_id: str) -> RunRecord | None:
        row = row_by_id(conn, run_id)
        return None if row is None else self._records(conn, [row])[0]

    def _resolve(self, conn: Connection, ref: str, kind: str | None) -> RunRecord:
        return self._records(conn, [resolve_row(conn, ref, kind)])[0]

    # -- public API --------------------------------------------------------------------------

    @_guarded
    def begin(
        self,
        *,
        kind: Kind,
        folder: str | os.PathLike[str],
        inputs: Sequence[Mapping[str, Any]],
        config: Mapping[str, Any],
        config_hash: str | None,
        name: str | None = None,
        tags: Iterable[str] = (),
        run_id: str | None = None,
        owner_pid: int | None = None,
    ) -> RunRecord:
        """Register a new run as ``running``, owned by this process (pid, host, start time).

        ``folder`` is stored as an absolute path. ``tags`` move to the new run if another run
        holds them (a tag names at most one run). ``run_id`` (from ``new_run_id``) lets the
        caller name the run's folder after it before registering; by default one is minted.
        Inputs need a ``path``; their ``sha256`` may come with ``succeed``.

        ``owner_pid`` registers the run for another process on this host instead (a worker the
        caller has just started to do the run): its pid and start token are recorded, so the
        row reads stale once that process is gone, whatever becomes of the caller.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        tag_list = list(dict.fromkeys(check_tag(tag) for tag in tags))
        pid = os.getpid() if owner_pid is None else int(owner_pid)
        values = {
            "kind": kind,
            "status": "running",
            "created": datetime.now(UTC),
            "name": check_name(name),
            "inputs": check_inputs(inputs, hashed=False),
            "config": jsonable(dict(config), "config"),
            "config_hash": config_hash,
            "metrics": {},
            "folder": os.path.abspath(os.fspath(folder)),
            "pid": pid,
            "host": socket.gethostname(),
            "proc_start": process_start_token(pid),
        }

        given = None if run_id is None else normalise_id(run_id)

        def insert(conn: Connection) -> RunRecord:
            new_id = given or new_run_id()
            conn.execute(runs_table.insert().values(id=new_id, **values))
            for tag in tag_list:
                self._database.backend.upsert_tag(conn, tag, new_id)
            record = self._by_id(conn, new_id)
            assert record is not None
            return record

        self._database.ready()  # migrate outside the retry below: it is for id collisions only
        if given is not None:
            return self._database.write(insert)  # a caller's id that exists already is an error
        for _attempt in range(4):
            try:
                return self._database.write(insert)
            except sa_exc.IntegrityError:
                continue  # a new id minted in the same millisecond by another process
        return self._database.write(insert)

    def _finish(self, run_id: str, status: Status, values: dict[str, Any]) -> RunRecord:
        def update(conn: Connection) -> RunRecord:
            result = conn.execute(
                runs_table.update()
                .where(runs_table.c.id == run_id, runs_table.c.status == "running")
                .values(status=status, finished=datetime.now(UTC), **values)
            )
            record = self._by_id(conn, run_id)
            if record is None:
                raise RunNotFoundError(f"No run with id {run_id!r}.", ref=run_id)
            if result.rowcount == 0:
                raise RunStateError(
                    f"Run {run_id} is already {record.status}; only a running run can be "
                    f"marked {status}."
                )
            return record

        return self._database.write(update)

    @_guarded
    def succeed(
        self,
        run_id: str,
        *,
        k: int | None = None,
        customers: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        inputs: Sequence[Mapping[str, Any]] | None = None,
    ) -> RunRecord:
        """Mark a running run succeeded (call only once its folder is complete and in place);
        ``inputs`` replaces the inputs given to ``begin`` with what was read (their hashes)."""
        values: dict[str, Any] = {
            "k": None if k is None else int(k),
            "customers": None if customers is None else int(customers),
        }
        if metrics is not None:
            values["metrics"] = jsonable(dict(metrics), "metrics")
        if inputs is not None:
            values["inputs"] = check_inputs(inputs)
        return self._finish(run_id, "succeeded", values)

    @_guarded
    def fail(self, run_id: str, error: str) -> RunRecord:
        """Mark a running run failed with its error message."""
        text = str(error) or "failed without a message"
        if len(text) > _MAX_ERROR_CHARS:
            text = text[:_MAX_ERROR_CHARS] + " …(truncated)"
        return self._finish(run_id, "failed", {"error": text})

    @_guarded
    def get(self, run_id: str) -> RunRecord:
        """The run with exactly this id."""

        def read(conn: Connection) -> RunRecord:
            record = self._by_id(conn, normalise_id(run_id))
            if record is None:
                raise RunNotFoundError(f"No run with id {run_id!r}.", ref=run_id)
            return record

        return self._database.read(read)

    @_guarded
    def resolve(self, ref: str, *, kind: Kind | None = None) -> RunRecord:
        """The run a reference names, tried in this order:

        1. a full id (case-insensitive; Crockford's I/L→1, O→0),
        2. a tag (a tag names at most one run),
        3. a name (names need not be unique: the newest run with that name),
        4. a unique id prefix of at least 4 characters (ids start with their creation time, so
           runs made close together share their first characters),
        5. ``latest``: the newest succeeded run.

        With ``kind``, only runs of that kind match. Raises ``RunNotFoundError`` or, for a prefix
        shared by several runs, ``AmbiguousRunError`` listing them.
        """
        return self._database.read(lambda conn: self._resolve(conn, ref, kind))

    @_guarded
    def list(
        self,
        *,
        kind: Kind | None = None,
        status: Status | None = None,
        tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[RunRecord]:
        """Runs, newest first, filtered by stored kind, status and tag."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        query = (
            sa.select(runs_table)
            .where(*filters(kind, status, tag))
            .order_by(*NEWEST_FIRST)
            .limit(limit)
            .offset(offset)
        )
        return self._database.read(lambda conn: self._records(conn, conn.execute(query).all()))

    @_guarded
    def count(
        self, *, kind: Kind | None = None, status: Status | None = None, tag: str | None = None
    ) -> int:
        """How many runs ``list`` would give without a limit."""
        query = sa.select(sa.func.count()).select_from(runs_table)
        query = query.where(*filters(kind, status, tag))
        return int(self._database.read(lambda conn: conn.execute(query).scalar_one()))

    @_guarded
    def tag(self, ref: str, tag: str) -> RunRecord:
        """Tag a run. A tag names at most one run, so a tag held by another run moves here
        (like ``git tag -f``); tagging a run with a tag it already has changes nothing."""
        check_tag(tag)

        def move(conn: Connection) -> RunRecord:
            record = self._resolve(conn, ref, None)
            self._database.backend.upsert_tag(conn, tag, record.id)
            updated = self._by_id(conn, record.id)
            assert updated is not None
            return updated

        return self._database.write(move)

    @_guarded
    def untag(self, ref: str, tag: str) -> RunRecord:
        """Remove a tag from a run; a run without that tag is left as it is."""

        def remove(conn: Connection) -> RunRecord:
            record = self._resolve(conn, ref, None)
            conn.execute(
                tags_table.delete().where(tags_table.c.tag == tag, tags_table.c.run_id == record.id)
            )
            updated = self._by_id(conn, record.id)
            assert updated is not None
            return updated

        return self._database.write(remove)

    @_guarded
    def delete(self, ref: str) -> RunRecord:
        """Delete a run's row (and so its tags); returns the row as it was. The run folder is
        left alone: ``Workspace.delete_run`` removes both."""

        def remove(conn: Connection) -> RunRecord:
            record = self._resolve(conn, ref, None)
            conn.execute(runs_table.delete().where(runs_table.c.id == record.id))
            return record

        return self._database.write(remove)

    def close(self) -> None:
        """Release every pooled connection."""
        self._database.close()
