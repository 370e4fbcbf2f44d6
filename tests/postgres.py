"""pytest plugin: a real PostgreSQL for the registry tests, and a fresh database per test.

Fixtures:

- ``postgres_url`` (session): a SQLAlchemy URL (``postgresql+psycopg://``) of a database the
  tests may use and may ``CREATE DATABASE`` from. When ``SEGMINT_TEST_DATABASE_URL`` is set it is
  used as given. Otherwise a private, throwaway PostgreSQL 15 cluster is started: ``initdb``
  into a temporary folder and ``pg_ctl start`` on a free loopback port with the socket in that
  folder, run as the ``postgres`` OS user when the tests run as root; it is stopped and its
  folder removed when the session ends. The tests that need it are skipped, with the command's
  own error as the reason, only when the binaries are missing or the server truly cannot start.
- ``registry_url`` (per test, parametrised ``sqlite`` / ``postgresql``): an empty registry
  database: a SQLite file in the test's tmp_path, or a new PostgreSQL database created for the
  test and dropped after it (where the given server refuses ``CREATE DATABASE``, the registry's
  tables are dropped before and after instead).

Wired in with ``pytest_plugins = ["tests.postgres"]``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ENV_TEST_DATABASE_URL = "SEGMINT_TEST_DATABASE_URL"
# The registry's own tables, dropped when a fresh database cannot be created.
REGISTRY_TABLES = ("segmint_run_tags", "segmint_runs", "segmint_alembic_version")


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as a libpq connection URI (for psycopg directly)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def admin_connect(url: str) -> psycopg.Connection:
    """An autocommit connection for CREATE / DROP DATABASE."""
    import psycopg

    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Cluster:
    """A throwaway PostgreSQL cluster in a temporary folder, owned by the ``postgres`` user
    when we are root (the server refuses to run as root)."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="segmint-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port: int | None = None
        self.as_root = os.geteuid() == 0
        self.started = False

    def _command(self, *argv: str | Path) -> list[str]:
        command = [str(arg) for arg in argv]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def _run(self, *argv: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(*argv),
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-8:])
        except OSError:
            return ""

    def start(self) -> str:
        """Start the cluster; return its URL. Raises RuntimeError with the reason it cannot."""
        if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
            raise RuntimeError(
                f"PostgreSQL 15 is not installed ({PG_BIN}/initdb is absent; the Debian "
                "packages postgresql-15 and postgresql-client-15 provide it)"
            )
        if self.as_root:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root and runuser is absent")
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user") from None
            shutil.chown(self.base, "postgres", "postgres")
        init = self._run(
            PG_BIN / "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip()}")
        failure = ""
        for _attempt in range(3):  # another process may take the free port before we do
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            start = self._run(
                PG_BIN / "pg_ctl",
                "-D",
                self.data,
                "-l",
                self.log,
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
            if start.returncode == 0:
                self.started = True
                break
            failure = (
                f"pg_ctl start failed ({start.returncode}): {start.stderr.strip()} "
                f"{start.stdout.strip()}; server log: {self._log_tail()}"
            )
            if "could not bind" not in failure and "already in use" not in failure:
                break
        if not self.started:
            raise RuntimeError(failure)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        with admin_connect(url) as conn:
            conn.execute("CREATE DATABASE segmint_test")
        return url.removesuffix("/postgres") + "/segmint_test"

    def stop(self) -> None:
        if self.started:
            self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL for the session: ``SEGMINT_TEST_DATABASE_URL``, else a private cluster."""
    given = os.environ.get(ENV_TEST_DATABASE_URL, "").strip()
    if given:
        yield given
        return
    cluster = _Cluster()
    atexit.register(cluster.stop)  # also when the session ends abnormally
    try:
        url = cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        pytest.skip(f"cannot start a throwaway PostgreSQL 15: {exc}")
    try:
        yield url
    finally:
        cluster.stop()


@contextmanager
def fresh_postgres_database(base_url: str) -> Iterator[str]:
    """An empty database for one test, on the server of ``base_url``; dropped afterwards."""
    import psycopg

    name = f"segmint_t_{secrets.token_hex(6)}"
    with admin_connect(base_url) as conn:
        try:
            conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.errors.InsufficientPrivilege:
            name = ""
    if not name:  # a server we may not create databases on: clean the given one instead
        _drop_registry_tables(base_url)
        try:
            yield base_url
        finally:
            _drop_registry_tables(base_url)
        return
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin_connect(base_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_registry_tables(url: str) -> None:
    with admin_connect(url) as conn:
        for table in REGISTRY_TABLES:
            conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty registry database URL: SQLite in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url
