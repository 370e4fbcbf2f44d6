"""The run registry: one database row per run, compare, track, clv or effect.

Why a database rather than a folder listing: many processes register runs at once (a batch of
``segmint run`` jobs, the server's workers), and each needs to add a row, later finish it, and
let readers find "the latest succeeded run" or "the run tagged prod" without scanning folders
that may be half-written. SQLAlchemy 2 (Core) talks to both supported stores:

- **SQLite** (the default, a file in the workspace): WAL mode so readers never block the writer,
  a busy timeout, write transactions that take the write lock up front (``BEGIN IMMEDIATE``, so
  two writers never deadlock upgrading a read lock), and retries with jittered backoff when the
  database is still locked; foreign keys on.
- **PostgreSQL** through ``postgresql+psycopg://`` (psycopg 3): ordinary transactions, a connect
  timeout so an unreachable server fails in seconds, and an advisory lock around migrations.

The store is chosen by the URL's scheme (the same shape as mlflow's scheme-keyed store
registries): ``Registry(url)`` parses and checks the URL at once but connects lazily, on first
use, when it also brings the schema to the newest Alembic revision. The migrations ship inside
the package (``store/migrations``) and run programmatically on the connection the registry
opened, so no ``alembic.ini`` is needed and concurrent first uses are serialised by the
registry's own lock.

Run ids (see ``new_run_id``) are 14 lowercase Crockford base32 characters that sort by creation
time. A row left ``running`` by a process that is gone is reported ``stale`` when read: the row
records the writer's pid, host and process start time, so a recycled pid is not mistaken for the
original process.

Every database failure surfaces as ``RegistryError`` naming the URL with its password masked;
look-ups that find nothing raise ``RunNotFoundError`` and ambiguous id prefixes
``AmbiguousRunError``.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import os
import random
import re
import secrets
import socket
import sqlite3
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path, PurePath
from typing import Any, Literal, ParamSpec, TypeVar, get_args

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from segmint.exceptions import (
    AmbiguousRunError,
    ConfigError,
    RegistryError,
    RunNotFoundError,
    RunStateError,
    SegmintError,
)

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

Kind = Literal["run", "compare", "track", "clv", "effect"]
Status = Literal["running", "succeeded", "failed"]
State = Literal["running", "succeeded", "failed", "stale"]
KINDS: tuple[str, ...] = get_args(Kind)
STATUSES: tuple[str, ...] = get_args(Status)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "segmint_alembic_version"
# Key of the PostgreSQL advisory lock held while migrating: "segmint" in ASCII.
_PG_MIGRATION_LOCK = int.from_bytes(b"segmint", "big")

_T = TypeVar("_T")
_P = ParamSpec("_P")

# --------------------------------------------------------------------------------------------
# Run ids
# --------------------------------------------------------------------------------------------

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_BITS = 42  # milliseconds since 1970: enough until the year 2109
_RANDOM_BITS = 28
ID_LENGTH = (_TIME_BITS + _RANDOM_BITS) // 5  # 70 bits → 14 characters
_ID_RE = re.compile(f"[{_CROCKFORD}]{{{ID_LENGTH}}}")
_PREFIX_RE = re.compile(f"[{_CROCKFORD}]{{4,{ID_LENGTH}}}")
MIN_PREFIX = 4

_id_lock = threading.Lock()
_last_id: tuple[int, int] = (0, 0)


def _reset_id_state() -> None:
    global _last_id
    _last_id = (0, 0)


# A forked child must not continue the parent's in-millisecond counter: both would mint the
# same next id.
os.register_at_fork(after_in_child=_reset_id_state)


def new_run_id() -> str:
    """A new run id: 14 lowercase Crockford base32 characters (no i, l, o, u).

    The first 42 bits are the creation time in milliseconds since 1970 and the last 28 bits are
    random, so ids sort by creation time as text, two processes minting an id in the same
    millisecond collide with odds of 1 in 268 million (and the primary key turns even that into
    a retry), and the id stays short enough to read aloud. Within one process ids are strictly
    increasing: a second id in the same millisecond (or after the clock steps back) counts up
    from the previous one instead of drawing new random bits. (A 48-bit time plus 32 random
    bits, as in ULIDs, needs 16 characters; 42 + 28 keeps 14.)
    """
    global _last_id
    ms = time.time_ns() // 1_000_000
    with _id_lock:
        last_ms, last_random = _last_id
        if ms > last_ms:
            rand = secrets.randbits(_RANDOM_BITS)
        elif last_random + 1 < (1 << _RANDOM_BITS):
            ms, rand = last_ms, last_random + 1
        else:
            ms, rand = last_ms + 1, secrets.randbits(_RANDOM_BITS)
        _last_id = (ms, rand)
    if ms >> _TIME_BITS:
        raise OverflowError("run ids hold milliseconds since 1970 in 42 bits (until 2109)")
    value = (ms << _RANDOM_BITS) | rand
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(65, -1, -5))


def run_id_time(run_id: str) -> datetime:
    """The creation time (UTC, millisecond precision) encoded in a run id."""
    if not _ID_RE.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    value = 0
    for char in run_id:
        value = (value << 5) | _CROCKFORD.index(char)
    return datetime.fromtimestamp((value >> _RANDOM_BITS) / 1000, UTC)


def _normalise_id(text: str) -> str:
    """Crockford's reading rules: case-insensitive, I and L read as 1, O as 0."""
    return text.strip().lower().translate(str.maketrans("ilo", "110"))


# --------------------------------------------------------------------------------------------
# Which process wrote a row, and is it still alive?
# --------------------------------------------------------------------------------------------


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from ``/proc/<pid>/stat``, or None.

    The command name (field 2) is in parentheses and may itself hold spaces or parentheses, so
    the fields are counted from the last ``)``: state is field 3, start time field 22.
    """
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), fields[19].decode()


def process_start_token(pid: int) -> str | None:
    """What tells this process apart from a later one given the same pid.

    On Linux: the boot id and the process's start time since boot. None where ``/proc`` is
    absent (then only the pid is compared, and a recycled pid can hide a stale row).
    """
    stat = _proc_stat(pid)
    return None if stat is None else f"{_boot_id()}:{stat[1]}"


def _process_alive(pid: int, token: str | None) -> bool:
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        if state in ("Z", "X"):  # killed but not yet reaped: the run is over all the same
            return False
        return token is None or token == f"{_boot_id()}:{start}"
    if Path("/proc/self/stat").exists():  # Linux, and the pid has no entry: gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _is_stale(status: str, pid: int | None, host: str | None, token: str | None) -> bool:
    """A running row whose process, on this host, is gone. Rows from other hosts are never
    called stale: their processes cannot be seen from here."""
    if status != "running" or pid is None or host != socket.gethostname():
        return False
    return not _process_alive(pid, token)


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
# Schema (the migrations in store/migrations create it; this is the query-side description)
# --------------------------------------------------------------------------------------------


class _UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out. SQLite keeps naive UTC text (which sorts
    correctly); PostgreSQL keeps ``timestamptz``."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_metadata = sa.MetaData()
_runs = sa.Table(
    "segmint_runs",
    _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text()),
    sa.Column("created", _UTCDateTime(), nullable=False),
    sa.Column("finished", _UTCDateTime()),
    sa.Column("name", sa.String(200)),
    sa.Column("inputs", sa.JSON(), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("config_hash", sa.String(128)),
    sa.Column("k", sa.Integer()),
    sa.Column("customers", sa.BigInteger()),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("folder", sa.Text(), nullable=False),
    sa.Column("pid", sa.Integer()),
    sa.Column("host", sa.String(255)),
    sa.Column("proc_start", sa.String(64)),
)
_tags = sa.Table(
    "segmint_run_tags",
    _metadata,
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey(_runs.c.id, ondelete="CASCADE")),
)
_NEWEST_FIRST = (_runs.c.created.desc(), _runs.c.id.desc())

_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RESERVED_REFS = frozenset({"latest"})
_MAX_ERROR_CHARS = 20_000


def _check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise ConfigError(
            [
                f"tag {tag!r} is not allowed: use 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            ],
            settings=("tag",),
        )
    if tag in _RESERVED_REFS:
        raise ConfigError(
            [f"tag {tag!r} is reserved: it always means the newest succeeded run"],
            settings=("tag",),
        )
    return tag


def _check_name(name: str | None) -> str | None:
    if name is None:
        return None
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 200 or any(ch < " " for ch in cleaned):
        raise ConfigError(
            [f"run name {name!r} is not allowed: use 1 to 200 printable characters"],
            settings=("name",),
        )
    return cleaned


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON values from what callers hand over (numpy scalars and arrays, paths, dates,
    pydantic models). Non-finite floats become null: PostgreSQL's JSON has no NaN."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, where) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"), where)
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        return _jsonable(value.item(), where)  # a numpy / pandas scalar
    if callable(getattr(value, "tolist", None)):
        return _jsonable(value.tolist(), where)  # a numpy array
    raise TypeError(f"{where}: a {type(value).__name__} cannot be stored as JSON")


def _check_inputs(
    inputs: Sequence[Mapping[str, Any]], *, hashed: bool = True
) -> list[dict[str, Any]]:
    """Each input needs a ``path``; a finished run's inputs also need their ``sha256`` (a
    running one may not have read them yet)."""
    keys = ("path", "sha256") if hashed else ("path",)
    checked = []
    for position, item in enumerate(inputs):
        if not isinstance(item, Mapping) or not all(
            isinstance(item.get(key), str) and item.get(key) for key in keys
        ):
            need = "a 'path' and a 'sha256' string" if hashed else "a 'path' string"
            raise ValueError(f"inputs[{position}] needs {need}: {item!r}")
        checked.append(_jsonable(item, f"inputs[{position}]"))
    return checked


# --------------------------------------------------------------------------------------------
# URLs and backends
# --------------------------------------------------------------------------------------------

_PASSWORD_IN_URL = re.compile(r"(://[^:/?#@\s]*:)[^@/?#\s]*@")


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``; works on URLs that do not parse too."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError, TypeError):
        return _PASSWORD_IN_URL.sub(r"\1***@", str(url))


_DRIVER_ALIASES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
_SUPPORTED = ("sqlite:///PATH", "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE")


def parse_database_url(url: str | URL) -> URL:
    """Parse and check a registry URL without connecting.

    ``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg://`` (the one PostgreSQL
    driver segmint installs). Raises ``ConfigError`` for anything else, with the password masked.
    """
    shown = mask_url(url)
    try:
        parsed = url if isinstance(url, URL) else make_url(str(url).strip())
    except (sa_exc.ArgumentError, ValueError, TypeError):
        raise ConfigError(
            [f"database URL {shown!r} is malformed; expected {' or '.join(_SUPPORTED)}"]
        ) from None
    parsed = parsed.set(drivername=_DRIVER_ALIASES.get(parsed.drivername, parsed.drivername))
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(
            [
                f"database URL {shown!r} uses {parsed.drivername!r}, which the run registry does "
                f"not support; expected {' or '.join(_SUPPORTED)}"
            ]
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            [f"database URL {shown!r} names no file; the registry needs sqlite:///PATH"]
        )
    if parsed.get_backend_name() == "postgresql" and not parsed.database:
        raise ConfigError([f"database URL {shown!r} names no database; add /DATABASE"])
    return parsed


def _driver_error(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


class _Backend(ABC):
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


class _SQLite(_Backend):
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

        stmt = insert(_tags).values(tag=tag, run_id=run_id)
        conn.execute(stmt.on_conflict_do_update(index_elements=["tag"], set_={"run_id": run_id}))

    def is_transient(self, exc: BaseException) -> bool:
        orig = _driver_error(exc)
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


class _PostgreSQL(_Backend):
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

        stmt = insert(_tags).values(tag=tag, run_id=run_id)
        conn.execute(stmt.on_conflict_do_update(index_elements=["tag"], set_={"run_id": run_id}))

    def is_transient(self, exc: BaseException) -> bool:
        # serialization_failure and deadlock_detected: the transaction is safe to run again.
        return getattr(_driver_error(exc), "sqlstate", None) in ("40001", "40P01")


_BACKENDS: dict[str, type[_Backend]] = {"sqlite": _SQLite, "postgresql": _PostgreSQL}


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

_open_registries: weakref.WeakSet[Registry] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Pooled connections belong to the parent; the child opens its own (SQLAlchemy's advice).
    for registry in list(_open_registries):
        registry._forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
            raise registry._unavailable(exc) from None
        except Exception as exc:
            from alembic.util import CommandError

            if isinstance(exc, CommandError):
                raise registry._unavailable(exc) from None
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
        self._url = parse_database_url(url)
        self._backend = _BACKENDS[self._url.get_backend_name()]()
        self._connect_timeout = connect_timeout
        self._lock_timeout = lock_timeout
        self._engine: Engine | None = None
        self._migrated = False
        self._init_lock = threading.Lock()
        _open_registries.add(self)

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return mask_url(self._url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._backend.name

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection plumbing -----------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> RegistryError:
        orig = _driver_error(exc)
        lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
        reason = lines[0] if lines else type(orig).__name__
        if self._url.password:
            reason = reason.replace(str(self._url.password), "***")
        return RegistryError(f"The run registry at {self.url} is unavailable: {reason}")

    def _forget_connections(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)

    def _ready(self) -> Engine:
        engine = self._engine
        if engine is not None and self._migrated:
            return engine
        with self._init_lock:
            if self._engine is None:
                self._engine = self._backend.create_engine(self._url, self._connect_timeout)
            if not self._migrated:
                self._migrate(self._engine)
                self._migrated = True
            return self._engine

    def _transaction(self, engine: Engine, work: Callable[[Connection], _T], write: bool) -> _T:
        delay = 0.02
        deadline = time.monotonic() + self._lock_timeout
        while True:
            try:
                with engine.connect() as conn:
                    if write:
                        self._backend.begin_write(conn)
                    with conn.begin():
                        return work(conn)
            except (sa_exc.DBAPIError, sqlite3.Error) as exc:
                if not self._backend.is_transient(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    def _read(self, work: Callable[[Connection], _T]) -> _T:
        return self._transaction(self._ready(), work, write=False)

    def _write(self, work: Callable[[Connection], _T]) -> _T:
        return self._transaction(self._ready(), work, write=True)

    def _migrate(self, engine: Engine) -> bool:
        """Bring the schema to the newest revision; True when anything ran."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["version_table"] = VERSION_TABLE
        script = ScriptDirectory.from_config(config)
        heads = set(script.get_heads())
        known = {revision.revision for revision in script.walk_revisions()}

        def current(conn: Connection) -> set[str]:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return set(context.get_current_heads())

        if self._transaction(engine, current, write=False) == heads:
            return False

        def upgrade(conn: Connection) -> bool:
            self._backend.lock_for_migration(conn)
            have = current(conn)  # again, now that this process holds the lock
            if have - known:
                raise RegistryError(
                    f"The run registry at {self.url} has schema revision "
                    f"{', '.join(sorted(have - known))}, newer than this segmint knows "
                    f"({', '.join(sorted(heads))}); upgrade segmint to use it."
                )
            if have == heads:
                return False
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            return True

        return self._transaction(engine, upgrade, write=True)

    # -- reading rows ------------------------------------------------------------------------

    def _records(self, conn: Connection, rows: Sequence[sa.Row[Any]]) -> builtins.list[RunRecord]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        tags: dict[str, builtins.list[str]] = {run_id: [] for run_id in ids}
        query = sa.select(_tags.c.tag, _tags.c.run_id).where(_tags.c.run_id.in_(ids))
        for tag, run_id in conn.execute(query.order_by(_tags.c.tag)):
            tags[run_id].append(tag)
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
                stale=_is_stale(row.status, row.pid, row.host, row.proc_start),
            )
            for row in rows
        ]

    def _by_id(self, conn: Connection, run_id: str) -> RunRecord | None:
        row = conn.execute(sa.select(_runs).where(_runs.c.id == run_id)).first()
        return None if row is None else self._records(conn, [row])[0]

    def _resolve(self, conn: Connection, ref: str, kind: str | None) -> RunRecord:
        text = ref.strip() if isinstance(ref, str) else ""
        of_kind = f" of kind {kind!r}" if kind else ""
        if not text:
            raise RunNotFoundError("An empty run reference matches no run.", ref=ref)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        kind_filter = [_runs.c.kind == kind] if kind else []

        if text == "latest":
            query = sa.select(_runs).where(_runs.c.status == "succeeded", *kind_filter)
            row = conn.execute(query.order_by(*_NEWEST_FIRST).limit(1)).first()
            if row is None:
                raise RunNotFoundError(f"No run{of_kind} has succeeded yet.", ref=ref)
            return self._records(conn, [row])[0]

        def check_kind(record: RunRecord) -> RunRecord:
            if kind and record.kind != kind:
                raise RunNotFoundError(
                    f"Run {record.id} ({text!r}) is a {record.kind!r}, not a {kind!r}.", ref=ref
                )
            return record

        as_id = _normalise_id(text)
        if _ID_RE.fullmatch(as_id) and (record := self._by_id(conn, as_id)):
            return check_kind(record)

        tagged = conn.execute(sa.select(_tags.c.run_id).where(_tags.c.tag == text)).scalar()
        if tagged is not None and (record := self._by_id(conn, tagged)):
            return check_kind(record)

        query = sa.select(_runs).where(_runs.c.name == text, *kind_filter)
        row = conn.execute(query.order_by(*_NEWEST_FIRST).limit(1)).first()
        if row is not None:
            return self._records(conn, [row])[0]

        if _PREFIX_RE.fullmatch(as_id):
            query = sa.select(_runs.c.id, _runs.c.kind, _runs.c.created).where(
                _runs.c.id.startswith(as_id, autoescape=True), *kind_filter
            )
            found = conn.execute(query.order_by(*_NEWEST_FIRST).limit(11)).all()
            if len(found) == 1:
                record = self._by_id(conn, found[0].id)
                assert record is not None
                return check_kind(record)
            if found:
                shown = ", ".join(
                    f"{r.id} ({r.kind}, {r.created:%Y-%m-%d %H:%M:%S}Z)" for r in found[:10]
                )
                more = " and more" if len(found) > 10 else ""
                raise AmbiguousRunError(
                    f"{text!r} is the start of {len(found) if not more else 'over 10'} run "
                    f"ids{of_kind}: {shown}{more}; give more characters of the id.",
                    ref=ref,
                    candidates=[r.id for r in found[:10]],
                )
        raise RunNotFoundError(
            f"No run{of_kind} matches {text!r} (looked for an id, a unique id prefix of at "
            f"least {MIN_PREFIX} characters, a tag, a name, or 'latest').",
            ref=ref,
        )

    def _filters(
        self, kind: str | None, status: str | None, tag: str | None
    ) -> builtins.list[sa.ColumnElement[bool]]:
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        where: builtins.list[sa.ColumnElement[bool]] = []
        if kind is not None:
            where.append(_runs.c.kind == kind)
        if status is not None:
            where.append(_runs.c.status == status)
        if tag is not None:
            tagged = sa.select(_tags.c.run_id).where(_tags.c.tag == tag)
            where.append(_runs.c.id.in_(tagged))
        return where

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
    ) -> RunRecord:
        """Register a new run as ``running``, owned by this process (pid, host, start time).

        ``folder`` is stored as an absolute path. ``tags`` move to the new run if another run
        holds them (a tag names at most one run). ``run_id`` (from ``new_run_id``) lets the
        caller name the run's folder after it before registering; by default one is minted.
        Inputs need a ``path``; their ``sha256`` may come with ``succeed``.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        tag_list = list(dict.fromkeys(_check_tag(tag) for tag in tags))
        pid = os.getpid()
        values = {
            "kind": kind,
            "status": "running",
            "created": datetime.now(UTC),
            "name": _check_name(name),
            "inputs": _check_inputs(inputs, hashed=False),
            "config": _jsonable(dict(config), "config"),
            "config_hash": config_hash,
            "metrics": {},
            "folder": os.path.abspath(os.fspath(folder)),
            "pid": pid,
            "host": socket.gethostname(),
            "proc_start": process_start_token(pid),
        }

        given = None if run_id is None else _normalise_id(run_id)

        def insert(conn: Connection) -> RunRecord:
            new_id = given or new_run_id()
            conn.execute(_runs.insert().values(id=new_id, **values))
            for tag in tag_list:
                self._backend.upsert_tag(conn, tag, new_id)
            record = self._by_id(conn, new_id)
            assert record is not None
            return record

        self._ready()  # migrate outside the retry below: it is for id collisions only
        if given is not None:
            return self._write(insert)  # a caller's id that exists already is an error
        for _attempt in range(4):
            try:
                return self._write(insert)
            except sa_exc.IntegrityError:
                continue  # a new id minted in the same millisecond by another process
        return self._write(insert)

    def _finish(self, run_id: str, status: Status, values: dict[str, Any]) -> RunRecord:
        def update(conn: Connection) -> RunRecord:
            result = conn.execute(
                _runs.update()
                .where(_runs.c.id == run_id, _runs.c.status == "running")
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

        return self._write(update)

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
            values["metrics"] = _jsonable(dict(metrics), "metrics")
        if inputs is not None:
            values["inputs"] = _check_inputs(inputs)
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
            record = self._by_id(conn, _normalise_id(run_id))
            if record is None:
                raise RunNotFoundError(f"No run with id {run_id!r}.", ref=run_id)
            return record

        return self._read(read)

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
        return self._read(lambda conn: self._resolve(conn, ref, kind))

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
            sa.select(_runs)
            .where(*self._filters(kind, status, tag))
            .order_by(*_NEWEST_FIRST)
            .limit(limit)
            .offset(offset)
        )
        return self._read(lambda conn: self._records(conn, conn.execute(query).all()))

    @_guarded
    def count(
        self, *, kind: Kind | None = None, status: Status | None = None, tag: str | None = None
    ) -> int:
        """How many runs ``list`` would give without a limit."""
        query = sa.select(sa.func.count()).select_from(_runs)
        query = query.where(*self._filters(kind, status, tag))
        return int(self._read(lambda conn: conn.execute(query).scalar_one()))

    @_guarded
    def tag(self, ref: str, tag: str) -> RunRecord:
        """Tag a run. A tag names at most one run, so a tag held by another run moves here
        (like ``git tag -f``); tagging a run with a tag it already has changes nothing."""
        _check_tag(tag)

        def move(conn: Connection) -> RunRecord:
            record = self._resolve(conn, ref, None)
            self._backend.upsert_tag(conn, tag, record.id)
            updated = self._by_id(conn, record.id)
            assert updated is not None
            return updated

        return self._write(move)

    @_guarded
    def untag(self, ref: str, tag: str) -> RunRecord:
        """Remove a tag from a run; a run without that tag is left as it is."""

        def remove(conn: Connection) -> RunRecord:
            record = self._resolve(conn, ref, None)
            conn.execute(_tags.delete().where(_tags.c.tag == tag, _tags.c.run_id == record.id))
            updated = self._by_id(conn, record.id)
            assert updated is not None
            return updated

        return self._write(remove)

    @_guarded
    def delete(self, ref: str) -> RunRecord:
        """Delete a run's row (and so its tags); returns the row as it was. The run folder is
        left alone: ``Workspace.delete_run`` removes both."""

        def remove(conn: Connection) -> RunRecord:
            record = self._resolve(conn, ref, None)
            conn.execute(_runs.delete().where(_runs.c.id == record.id))
            return record

        return self._write(remove)

    def close(self) -> None:
        """Release every pooled connection."""
        with self._init_lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
