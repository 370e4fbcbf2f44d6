"""The run registry, the workspace and ``segmint runs``, against SQLite and a real PostgreSQL.

Every test that takes ``registry_url`` runs twice: on a SQLite file and on a fresh PostgreSQL
database (see ``tests/postgres.py``, which starts a throwaway PostgreSQL 15 cluster when no
``SEGMINT_TEST_DATABASE_URL`` is given).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from segmint.exceptions import (
    AmbiguousRunError,
    ConfigError,
    RegistryError,
    RunNotFoundError,
    RunStateError,
    SegmintError,
)
from segmint.store.registry import Registry, RunRecord
from segmint.store.runids import new_run_id, run_id_time
from segmint.store.workspace import ENV_DATABASE_URL, ENV_WORKSPACE, Workspace

SHA = "ab" * 32


def _begin(registry: Registry, **overrides: Any) -> RunRecord:
    values: dict[str, Any] = {
        "kind": "run",
        "folder": "/tmp/segmint-test/run",
        "inputs": [{"path": "orders.csv", "sha256": SHA}],
        "config": {"k": "auto"},
        "config_hash": "cfg",
    }
    values.update(overrides)
    return registry.begin(**values)


@pytest.fixture
def registry(registry_url: str) -> Any:
    reg = Registry(registry_url)
    yield reg
    reg.close()


def _set_column(url: str, run_id: str, **values: Any) -> None:
    """Change a row behind the registry's back (as another host or a recycled pid would)."""
    engine = sa.create_engine(url)
    try:
        runs = sa.table("segmint_runs", sa.column("id"), *(sa.column(name) for name in values))
        with engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(**values))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------------


def test_run_ids_are_short_sortable_and_unique() -> None:
    before = datetime.now(UTC)
    ids = [new_run_id() for _ in range(5000)]
    assert all(len(run_id) == 14 for run_id in ids)
    assert all(set(run_id) <= set("0123456789abcdefghjkmnpqrstvwxyz") for run_id in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # strictly increasing within a process, even in one millisecond
    stamp = run_id_time(ids[0])
    assert before - timedelta(milliseconds=2) <= stamp <= datetime.now(UTC)
    later = new_run_id()
    time.sleep(0.005)
    assert new_run_id() > later


# --------------------------------------------------------------------------------------------
# Registry: lifecycle, look-ups, listing, tags, deletion
# --------------------------------------------------------------------------------------------


def test_begin_succeed_round_trip(registry: Registry, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    start = datetime.now(UTC)
    record = _begin(
        registry,
        folder=tmp_path / "runs" / "x",
        config={"k": 4, "seed": np.int64(7), "path": tmp_path},
        name="  nightly ",
        tags=["prod", "prod"],
    )
    assert len(record.id) == 14
    assert (record.kind, record.status, record.state) == ("run", "running", "running")
    assert record.stale is False
    assert record.created.tzinfo is not None and record.created.utcoffset() == timedelta(0)
    assert start - timedelta(seconds=1) <= record.created <= datetime.now(UTC)
    assert abs(run_id_time(record.id) - record.created) < timedelta(seconds=1)
    assert record.finished is None and record.error is None
    assert record.name == "nightly" and record.tags == ["prod"]
    assert record.inputs == [{"path": "orders.csv", "sha256": SHA}]
    assert record.config == {"k": 4, "seed": 7, "path": str(tmp_path)}
    assert record.folder == str(tmp_path / "runs" / "x")
    assert (record.pid, record.host) == (os.getpid(), socket.gethostname())

    done = registry.succeed(
        record.id,
        k=np.int64(5),
        customers=1234,
        metrics={"silhouette": np.float64(0.41), "gap": float("nan"), "sizes": np.arange(3)},
    )
    assert (done.status, done.state, done.k, done.customers) == ("succeeded", "succeeded", 5, 1234)
    assert done.metrics == {"silhouette": 0.41, "gap": None, "sizes": [0, 1, 2]}
    assert done.finished is not None and done.finished >= done.created
    assert registry.get(record.id) == done
    assert registry.get(record.id.upper()) == done
    dumped = done.model_dump(mode="json")
    assert dumped["state"] == "succeeded" and dumped["created"].endswith("Z")
    with pytest.raises(RunStateError, match="already succeeded"):
        registry.fail(record.id, "late")


def test_fail_records_the_error(registry: Registry) -> None:
    record = _begin(registry)
    failed = registry.fail(record.id, "input.csv: column 'Quantity' is missing")
    assert (failed.status, failed.state) == ("failed", "failed")
    assert failed.error == "input.csv: column 'Quantity' is missing"
    assert failed.finished is not None
    with pytest.raises(RunStateError, match="already failed") as info:
        registry.succeed(record.id, k=3)
    assert info.value.code == "run.state"
    with pytest.raises(RunNotFoundError):
        registry.fail("0000000000zzzz", "no such run")


def test_begin_rejects_bad_arguments(registry: Registry) -> None:
    with pytest.raises(ValueError, match="kind"):
        _begin(registry, kind="bogus")
    with pytest.raises(ValueError, match="path"):
        _begin(registry, inputs=[{"sha256": SHA}])
    with pytest.raises(ConfigError, match="reserved"):
        _begin(registry, tags=["latest"])
    with pytest.raises(ConfigError, match="not allowed"):
        _begin(registry, tags=["two words"])
    with pytest.raises(TypeError, match="config"):
        _begin(registry, config={"bad": object()})
    assert registry.count() == 0  # nothing half-registered


def _common_prefix(ids: list[str]) -> str:
    shortest = min(ids, key=len)
    for i, char in enumerate(shortest):
        if any(other[i] != char for other in ids):
            return shortest[:i]
    return shortest


def _unique_prefix(record: RunRecord, others: list[RunRecord]) -> str:
    for length in range(4, 15):
        prefix = record.id[:length]
        if not any(other.id.startswith(prefix) for other in others):
            return prefix
    raise AssertionError("ids are unique, so the full id is a unique prefix")


def test_resolve_by_id_prefix_tag_name_and_latest(registry: Registry) -> None:
    first = registry.succeed(_begin(registry, name="nightly").id, k=3)
    compare = registry.succeed(_begin(registry, kind="compare").id)
    second = registry.succeed(_begin(registry, name="nightly").id, k=4)
    running = _begin(registry)  # newer than every succeeded run
    failed = registry.fail(_begin(registry).id, "boom")
    everyone = [first, compare, second, running, failed]

    # latest: the newest succeeded row, of a kind when asked; running / failed rows never
    assert registry.resolve("latest").id == second.id
    assert registry.resolve("latest", kind="compare").id == compare.id
    with pytest.raises(RunNotFoundError, match="No run of kind 'clv' has succeeded yet"):
        registry.resolve("latest", kind="clv")

    # a full id, in any case
    for record in everyone:
        assert registry.resolve(record.id).id == record.id
        assert registry.resolve(record.id.upper()).id == record.id

    # a unique prefix
    for record in everyone:
        prefix = _unique_prefix(record, [r for r in everyone if r.id != record.id])
        assert registry.resolve(prefix).id == record.id

    # an ambiguous prefix lists every candidate
    shared = _common_prefix([r.id for r in everyone])
    assert len(shared) >= 4  # made within a second: ids start with their creation time
    with pytest.raises(AmbiguousRunError) as info:
        registry.resolve(shared)
    assert set(info.value.candidates) == {r.id for r in everyone}
    assert info.value.code == "run.ambiguous"
    assert all(r.id in str(info.value) for r in everyone)
    # a prefix ambiguous overall can be unique among one kind
    assert registry.resolve(shared, kind="compare").id == compare.id

    # a tag, and a name (the newest run of that name)
    registry.tag(first.id, "prod")
    assert registry.resolve("prod").id == first.id
    assert registry.resolve("nightly").id == second.id

    # kind mismatch is explained
    with pytest.raises(RunNotFoundError, match="is a 'compare', not a 'run'"):
        registry.resolve(compare.id, kind="run")


def test_not_found_messages(registry: Registry) -> None:
    with pytest.raises(RunNotFoundError, match="No run has succeeded yet"):
        registry.resolve("latest")
    _begin(registry)
    with pytest.raises(RunNotFoundError) as info:
        registry.resolve("no-such-run")
    message = str(info.value)
    assert "'no-such-run'" in message and "prefix" in message and "tag" in message
    assert info.value.code == "run.not_found" and isinstance(info.value, SegmintError)
    with pytest.raises(RunNotFoundError):
        registry.resolve("zzz")  # too short to be a prefix
    with pytest.raises(RunNotFoundError):
        registry.get("0000000000zzzz")


def test_list_filters_and_pagination(registry: Registry) -> None:
    made = []
    for i, kind in enumerate(["run", "compare", "run", "track", "clv", "run", "effect"]):
        record = _begin(registry, kind=kind, name=f"r{i}")
        if i % 3 == 0:
            record = registry.fail(record.id, "boom")
        elif i % 3 == 1:
            record = registry.succeed(record.id)
        made.append(record)
    newest_first = [r.id for r in reversed(made)]

    assert [r.id for r in registry.list()] == newest_first
    assert registry.count() == 7
    pages = [registry.list(limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [len(page) for page in pages] == [3, 3, 1, 0]
    assert [r.id for page in pages for r in page] == newest_first

    runs = registry.list(kind="run")
    assert [r.name for r in runs] == ["r5", "r2", "r0"] and registry.count(kind="run") == 3
    failed = registry.list(status="failed")
    assert [r.name for r in failed] == ["r6", "r3", "r0"] and registry.count(status="failed") == 3
    assert [r.name for r in registry.list(kind="run", status="failed")] == ["r0"]
    registry.tag(made[4].id, "best")
    assert [r.id for r in registry.list(tag="best")] == [made[4].id]
    assert registry.count(tag="best") == 1 and registry.count(tag="nothing") == 0
    with pytest.raises(ValueError):
        registry.list(status="stale")  # type: ignore[arg-type]


def test_tags_move_between_runs(registry: Registry) -> None:
    a = _begin(registry)
    b = _begin(registry)
    assert registry.tag(a.id, "best").tags == ["best"]
    assert registry.tag(a.id, "best").tags == ["best"]  # again: no change
    moved = registry.tag(b.id, "best")  # like git tag -f: the tag moves
    assert moved.tags == ["best"]
    assert registry.get(a.id).tags == []
    assert registry.resolve("best").id == b.id
    assert registry.count(tag="best") == 1
    registry.tag("best", "prod")  # a tag is a reference too
    assert registry.get(b.id).tags == ["best", "prod"]
    assert registry.untag(b.id, "best").tags == ["prod"]
    assert registry.untag(b.id, "best").tags == ["prod"]  # absent: unchanged
    with pytest.raises(RunNotFoundError):
        registry.resolve("best")
    with pytest.raises(ConfigError, match="reserved"):
        registry.tag(a.id, "latest")


def test_delete_removes_the_row_and_frees_its_tags(registry: Registry) -> None:
    keep = _begin(registry, tags=["keep"])
    gone = _begin(registry, tags=["prod"])
    deleted = registry.delete("prod")
    assert deleted.id == gone.id and deleted.tags == ["prod"]
    with pytest.raises(RunNotFoundError):
        registry.get(gone.id)
    with pytest.raises(RunNotFoundError):
        registry.resolve("prod")
    assert [r.id for r in registry.list()] == [keep.id]
    assert registry.tag(keep.id, "prod").tags == ["keep", "prod"]  # the tag is free again
    with pytest.raises(RunNotFoundError):
        registry.delete(gone.id)


# --------------------------------------------------------------------------------------------
# Migrations
# --------------------------------------------------------------------------------------------


def test_migrations_run_once_and_are_idempotent(
    registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic import command

    calls: list[str] = []
    real_upgrade = command.upgrade

    def counting_upgrade(config: Any, revision: str, **kwargs: Any) -> None:
        calls.append(revision)
        real_upgrade(config, revision, **kwargs)

    monkeypatch.setattr(command, "upgrade", counting_upgrade)
    first = Registry(registry_url)
    assert calls == []  # lazy: nothing happens before the first use
    record = _begin(first)
    assert calls == ["head"]
    _begin(first)
    first.close()
    assert calls == ["head"]

    second = Registry(registry_url)  # opened again: already at head, no upgrade
    assert second.get(record.id).id == record.id
    assert second.count() == 2
    second.close()
    assert calls == ["head"]

    engine = sa.create_engine(registry_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM segmint_alembic_version"))
            assert [row[0] for row in versions] == ["0001"]
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {"segmint_runs", "segmint_run_tags", "segmint_alembic_version"} <= tables


def test_a_newer_schema_is_refused(registry_url: str) -> None:
    Registry(registry_url).count()
    engine = sa.create_engine(registry_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE segmint_alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(RegistryError, match="newer than this segmint knows"):
        Registry(registry_url).count()


# --------------------------------------------------------------------------------------------
# Stale rows
# --------------------------------------------------------------------------------------------

_HOLD_A_RUN = """
import sys, time
from segmint.store.registry import Registry
record = Registry(sys.argv[1]).begin(
    kind="run", folder=sys.argv[2], inputs=[], config={}, config_hash=None
)
print(record.id, flush=True)
time.sleep(300)
"""


def _proc_state(pid: int) -> str | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_process_leaves_a_stale_row(
    registry: Registry, registry_url: str, tmp_path: Path
) -> None:
    registry.count()  # migrate first, so the child only registers
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_RUN, registry_url, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = child.stdout.readline().strip() if child.stdout else ""
        assert run_id, "the child process did not register a run"
        alive = registry.get(run_id)
        assert (alive.pid, alive.status, alive.stale, alive.state) == (
            child.pid,
            "running",
            False,
            "running",
        )

        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _proc_state(child.pid) not in ("Z", None) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _proc_state(child.pid) == "Z"  # killed, not yet reaped: already stale
        zombie = registry.get(run_id)
        assert (zombie.status, zombie.stale, zombie.state) == ("running", True, "stale")
    finally:
        child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()

    gone = registry.get(run_id)
    assert (gone.status, gone.stale, gone.state) == ("running", True, "stale")
    assert gone.model_dump(mode="json")["state"] == "stale"
    assert [r.state for r in registry.list()] == ["stale"]
    # a stale row can still be marked failed by whoever notices
    assert registry.fail(run_id, "its process was killed").state == "failed"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pid_reuse_and_other_hosts(registry: Registry, registry_url: str) -> None:
    mine = _begin(registry)
    assert registry.get(mine.id).stale is False  # this very process: alive

    # Same pid, but a different start time: the pid now belongs to another process.
    _set_column(registry_url, mine.id, proc_start="00000000-dead:1")
    assert registry.get(mine.id).stale is True
    assert registry.get(mine.id).state == "stale"

    # A dead pid on another host cannot be checked from here: not called stale.
    other = _begin(registry)
    _set_column(registry_url, other.id, host="some-other-host", pid=2**22 + 12345)
    assert registry.get(other.id).stale is False
    _set_column(registry_url, other.id, host=socket.gethostname())
    assert registry.get(other.id).stale is True

    # Finished rows are never stale, whatever became of their process.
    done = registry.succeed(_begin(registry).id)
    _set_column(registry_url, done.id, pid=2**22 + 12345)
    assert registry.get(done.id).stale is False


# --------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------

WORKERS, RUNS_EACH = 8, 20


def _register_many(url: str, worker: int, barrier: Any, results: Any) -> None:
    """One of WORKERS processes: register and finish RUNS_EACH runs as fast as it can."""
    try:
        import alembic.command  # loaded before the start line, so that the race is tight
        import alembic.runtime.migration  # noqa: F401

        registry = Registry(url)  # lazy: every worker races to migrate the fresh database
        barrier.wait(timeout=120)
        assert registry.count() >= 0  # the first use migrates, all workers at once
        ids = []
        for i in range(RUNS_EACH):
            record = registry.begin(
                kind="run",
                folder=f"/tmp/segmint-w{worker}/{i}",
                inputs=[{"path": f"w{worker}.csv", "sha256": f"{worker:064x}"}],
                config={"worker": worker, "i": i},
                config_hash=f"{worker}-{i}",
                tags=[f"w{worker}"],  # moves from this worker's previous run
            )
            if i % 4 == 0:
                registry.tag(record.id, "hot")  # read, then write: contended by every worker
            registry.succeed(record.id, k=i, customers=worker, metrics={"i": i})
            ids.append(record.id)
        registry.close()
        results.put((worker, ids, None))
    except BaseException as exc:
        results.put((worker, [], f"{type(exc).__name__}: {exc}"))


def test_concurrent_processes_register_every_run_once(registry_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_register_many, args=(registry_url, w, barrier, results))
        for w in range(WORKERS)
    ]
    for process in workers:
        process.start()
    try:
        outcomes = [results.get(timeout=300) for _ in workers]
    finally:
        for process in workers:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    errors = [error for _, _, error in outcomes if error]
    assert errors == []
    assert all(process.exitcode == 0 for process in workers)
    made = {run_id: worker for worker, ids, _ in outcomes for run_id in ids}
    assert len(made) == WORKERS * RUNS_EACH

    registry = Registry(registry_url)
    try:
        rows = registry.list(limit=1000)
        assert len(rows) == WORKERS * RUNS_EACH == registry.count()
        assert sorted(r.id for r in rows) == sorted(made)  # every run exactly once
        assert [r.id for r in rows] == [
            r.id for r in sorted(rows, key=lambda r: (r.created, r.id), reverse=True)
        ]
        for row in rows:
            assert row.status == "succeeded"
            assert row.customers == made[row.id] == row.config["worker"]
            assert row.k == row.config["i"] == row.metrics["i"]
            assert row.config_hash == f"{row.customers}-{row.k}"
        assert registry.count(tag="hot") == 1
        for worker in range(WORKERS):  # each worker's tag ended on its last run
            assert [r.id for r in registry.list(tag=f"w{worker}")] == [
                next(ids[-1] for w, ids, _ in outcomes if w == worker)
            ]
    finally:
        registry.close()

    if registry_url.startswith("sqlite"):
        path = registry_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    else:
        from tests.postgres import admin_connect

        with admin_connect(registry_url) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            checked = conn.execute(
                "SELECT c.relname, bt_index_check(c.oid, true) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid IN ('segmint_runs'::regclass, 'segmint_run_tags'::regclass)"
            ).fetchall()
        assert len(checked) >= 5  # both primary keys and the secondary indexes, all intact


def _finish_in_child(registry: Registry, run_id: str, results: Any) -> None:
    child = _begin(registry)  # through the connections the parent's pool held before fork
    registry.succeed(run_id, k=2)
    results.put(child.id)


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_uses_its_own_connections(registry: Registry) -> None:
    parent = _begin(registry)  # the pool now holds an open connection
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    process = ctx.Process(target=_finish_in_child, args=(registry, parent.id, results))
    process.start()
    child_id = results.get(timeout=60)
    process.join(timeout=60)
    assert process.exitcode == 0
    assert child_id != parent.id
    assert registry.get(parent.id).status == "succeeded"
    assert registry.get(child_id).pid == process.pid
    assert registry.count() == 2  # the parent's connections still work


def test_sqlite_writes_retry_while_the_database_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segmint.store import backends

    monkeypatch.setattr(backends.SQLite, "busy_timeout_ms", 100)
    path = tmp_path / "registry.db"
    patient = Registry(f"sqlite:///{path}")
    impatient = Registry(f"sqlite:///{path}", lock_timeout=0.3)
    patient.count()
    impatient.count()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        began = time.monotonic()
        with pytest.raises(RegistryError, match="database is locked"):
            _begin(impatient)
        assert time.monotonic() - began < 3

        release = threading.Timer(1.0, lambda: blocker.execute("COMMIT"))
        release.start()
        began = time.monotonic()
        record = _begin(patient)  # the busy timeout (0.1 s) passes many times: retried
        assert time.monotonic() - began >= 0.8
        release.join()
        assert patient.get(record.id).status == "running"
        assert patient.count() == 1
    finally:
        blocker.close()
        patient.close()
        impatient.close()


# --------------------------------------------------------------------------------------------
# Bad and unreachable URLs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "malformed"),
        ("mysql://reg:s3cret@db.example/runs", "does not support"),
        ("postgresql+asyncpg://reg:s3cret@db.example/runs", "does not support"),
        ("sqlite://", "names no file"),
        ("postgresql://reg:s3cret@db.example", "names no database"),
    ],
)
def test_a_malformed_url_is_a_clear_config_error(url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        Registry(url)
    assert "s3cret" not in str(info.value)
    if "reg:" in url:
        assert "reg:***@" in str(info.value)


def test_workspace_names_the_env_var_of_a_bad_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DATABASE_URL, "mysql://reg:s3cret@db.example/runs")
    with pytest.raises(ConfigError) as info:
        Workspace.open(tmp_path / "ws")
    message = str(info.value)
    assert ENV_DATABASE_URL in message and "s3cret" not in message and "***" in message


def test_postgresql_without_driver_means_psycopg(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    registry = Registry(plain)
    assert registry.dialect == "postgresql"
    assert registry.count() >= 0
    registry.close()


def test_an_unreachable_server_fails_fast_with_a_masked_url() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registry = Registry(f"postgresql+psycopg://reg:s3cret@127.0.0.1:{port}/runs")
    began = time.monotonic()
    with pytest.raises(RegistryError) as info:
        registry.list()
    assert time.monotonic() - began < 5
    message = str(info.value)
    assert "reg:***@127.0.0.1" in message and "s3cret" not in message
    assert "unavailable" in message and "Traceback" not in message and "\n" not in message
    assert info.value.code == "registry.unavailable"


def test_a_silent_server_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        registry = Registry(f"postgresql+psycopg://reg@127.0.0.1:{port}/runs", connect_timeout=2)
        began = time.monotonic()
        with pytest.raises(RegistryError, match="unavailable"):
            registry.count()
        elapsed = time.monotonic() - began
    assert 1.5 <= elapsed < 10


def test_sqlite_in_a_missing_folder_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="unable to open database file"):
        Registry(f"sqlite:///{tmp_path / 'missing' / 'registry.db'}").count()


# --------------------------------------------------------------------------------------------
# Workspace
# --------------------------------------------------------------------------------------------


def test_workspace_location_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_WORKSPACE, raising=False)
    default = Workspace.open()
    assert default.root == tmp_path / "segmint-workspace"
    assert default.runs_dir.is_dir()
    assert default.database_url == f"sqlite:///{tmp_path / 'segmint-workspace' / 'registry.db'}"
    assert default.folder_for("d260jgbdc3dkmc") == default.runs_dir / "d260jgbdc3dkmc"
    with pytest.raises(ValueError):
        default.folder_for("../escape")

    monkeypatch.setenv(ENV_WORKSPACE, str(tmp_path / "from-env"))
    assert Workspace.open().root == tmp_path / "from-env"
    assert Workspace.open(tmp_path / "given").root == tmp_path / "given"
    assert (tmp_path / "given" / "runs").is_dir()

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        Workspace.open(tmp_path / "a-file")


def test_workspace_registry_is_lazy_and_follows_the_env(
    registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DATABASE_URL, registry_url)
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.database_url == Registry(registry_url).url
        assert not (tmp_path / "ws" / "registry.db").exists()
        record = _begin(ws.registry, folder=ws.folder_for("x"))
        assert ws.registry.get(record.id).folder == str(tmp_path / "ws" / "runs" / "x")
    assert not (tmp_path / "ws" / "registry.db").exists()  # the env's database was used


def test_workspace_delete_run(registry_url: str, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", database_url=registry_url)
    inside = _begin(ws.registry)
    folder = ws.folder_for(inside.id)
    (folder / "tables").mkdir(parents=True)
    (folder / "tables" / "segments.parquet").write_bytes(b"x")
    # the folder is recorded after the id is known, as the pipeline will
    _set_column(registry_url, inside.id, folder=str(folder))
    ws.registry.succeed(inside.id)

    outside_folder = tmp_path / "elsewhere"
    outside_folder.mkdir()
    (outside_folder / "report.html").write_text("keep me")
    outside = ws.registry.succeed(_begin(ws.registry, folder=outside_folder).id)
    running = _begin(ws.registry, folder=ws.folder_for("live"))

    deleted = ws.delete_run(inside.id)
    assert deleted.folder_removed is True and deleted.note is None
    assert not folder.exists()
    assert not any(p.name.startswith(".deleting") for p in ws.runs_dir.iterdir())
    with pytest.raises(RunNotFoundError):
        ws.registry.get(inside.id)

    kept = ws.delete_run(outside.id)
    assert kept.folder_removed is False and "outside the workspace" in (kept.note or "")
    assert (outside_folder / "report.html").read_text() == "keep me"
    with pytest.raises(RunNotFoundError):
        ws.registry.get(outside.id)

    with pytest.raises(RunStateError, match="still running"):
        ws.delete_run(running.id)
    assert ws.registry.get(running.id).status == "running"
    assert ws.delete_run(running.id, force=True).record.id == running.id
    assert ws.registry.count() == 0
    ws.close()


# --------------------------------------------------------------------------------------------
# segmint runs (the CLI)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def runs_cli(registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke ``segmint runs ...`` on a workspace whose registry is ``registry_url``."""
    import typer
    from typer.testing import CliRunner

    from segmint.cli.runs import runs_app

    app = typer.Typer()
    app.add_typer(runs_app, name="runs")

    @app.callback()
    def _root() -> None:
        """The main CLI, reduced to its mount point."""

    monkeypatch.setenv(ENV_DATABASE_URL, registry_url)
    monkeypatch.setenv(ENV_WORKSPACE, str(tmp_path / "ws"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, ["runs", *args], input=input)

    return invoke


@pytest.fixture
def populated(registry_url: str, tmp_path: Path) -> dict[str, RunRecord]:
    ws = Workspace.open(tmp_path / "ws", database_url=registry_url)
    first = _begin(ws.registry, name="baseline")
    folder = ws.folder_for(first.id)
    folder.mkdir()
    _set_column(registry_url, first.id, folder=str(folder))
    first = ws.registry.succeed(first.id, k=4, customers=4338, metrics={"silhouette": 0.41})
    compare = ws.registry.succeed(_begin(ws.registry, kind="compare").id, customers=4338)
    failed = ws.registry.fail(_begin(ws.registry).id, "boom")
    first = ws.registry.tag(first.id, "prod")
    ws.close()
    return {"first": first, "compare": compare, "failed": failed}


def test_cli_list(runs_cli: Any, populated: dict[str, RunRecord]) -> None:
    result = runs_cli("list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.strip()[:14] in {r.id for r in populated.values()}]
    order = [line.strip()[:14] for line in rows]
    ids = populated
    assert order == [ids["failed"].id, ids["compare"].id, ids["first"].id]
    first_row = rows[2]
    for text in ("run", "succeeded", "baseline [prod]", "4,338", f"runs/{ids['first'].id}"):
        assert text in first_row
    assert "failed" in rows[0] and "compare" in rows[1]

    as_json = runs_cli("list", "--json", "--kind", "run")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert [d["id"] for d in data] == [ids["failed"].id, ids["first"].id]
    assert data[1] == ids["first"].model_dump(mode="json")
    assert data[0]["state"] == "failed" and data[0]["error"] == "boom"

    assert json.loads(runs_cli("list", "--json", "--status", "succeeded", "--limit", "1").stdout)[
        0
    ]["id"] == (ids["compare"].id)
    tagged = json.loads(runs_cli("list", "--json", "--tag", "prod").stdout)
    assert [d["id"] for d in tagged] == [ids["first"].id]
    limited = runs_cli("list", "--limit", "2")
    assert "2 of 3 runs shown" in limited.stdout
    assert runs_cli("list", "--kind", "bogus").exit_code == 2


def test_cli_show(runs_cli: Any, populated: dict[str, RunRecord]) -> None:
    first = populated["first"]
    result = runs_cli("show", "prod")
    assert result.exit_code == 0, result.output
    for text in (first.id, "succeeded", "baseline", "orders.csv", SHA[:12], "4,338", "0.41"):
        assert text in result.stdout
    as_json = runs_cli("show", "latest", "--json")
    assert json.loads(as_json.stdout)["id"] == populated["compare"].id
    assert json.loads(runs_cli("show", first.id[:14], "--json").stdout) == first.model_dump(
        mode="json"
    )


def test_cli_errors_are_one_red_line_and_exit_2(
    runs_cli: Any, populated: dict[str, RunRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = runs_cli("show", "no-such-run")
    assert missing.exit_code == 2
    assert missing.stdout == ""
    assert missing.stderr.startswith("error [run.not_found]: No run matches 'no-such-run'")
    assert len(missing.stderr.strip().splitlines()) == 1

    shared = _common_prefix([r.id for r in populated.values()])
    ambiguous = runs_cli("show", shared)
    assert ambiguous.exit_code == 2 and "give more characters" in ambiguous.stderr
    assert ambiguous.stderr.startswith("error [run.ambiguous]: ")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(ENV_DATABASE_URL, f"postgresql+psycopg://reg:s3cret@127.0.0.1:{port}/x")
    down = runs_cli("list")
    assert down.exit_code == 2
    assert "unavailable" in down.stderr and "s3cret" not in down.stderr
    assert "Traceback" not in down.output and len(down.stderr.strip().splitlines()) == 1


def test_cli_tag_and_delete(
    runs_cli: Any, populated: dict[str, RunRecord], registry_url: str
) -> None:
    first, compare = populated["first"], populated["compare"]
    moved = runs_cli("tag", compare.id, "prod")
    assert moved.exit_code == 0, moved.output
    assert f"Tagged {compare.id} as prod (moved from {first.id})" in moved.stdout
    assert runs_cli("tag", "latest", "not ok").exit_code == 2

    kept = runs_cli("delete", "baseline", input="n\n")
    assert kept.exit_code == 1  # declined
    registry = Registry(registry_url)
    assert registry.get(first.id).id == first.id

    folder = Path(first.folder)
    assert folder.is_dir()
    gone = runs_cli("delete", "baseline", "--yes")
    assert gone.exit_code == 0, gone.output
    assert f"Deleted run {first.id} and its folder" in gone.stdout
    assert not folder.exists()
    with pytest.raises(RunNotFoundError):
        registry.get(first.id)
    elsewhere = runs_cli("delete", "prod", "--yes")
    assert elsewhere.exit_code == 0 and "outside the workspace" in elsewhere.stdout
    assert registry.count() == 1
    registry.close()


def test_inputs_are_hashed_when_the_run_succeeds(registry: Registry) -> None:
    """A run is registered before its inputs are read; it succeeds with their hashes, under
    the id its caller chose (so the folder can be named after it)."""
    run_id = new_run_id()
    record = _begin(registry, inputs=[{"path": "orders.csv"}], run_id=run_id)
    assert record.id == run_id and record.inputs == [{"path": "orders.csv"}]
    with pytest.raises(ValueError, match="sha256"):
        registry.succeed(run_id, inputs=[{"path": "orders.csv"}])
    done = registry.succeed(run_id, inputs=[{"path": "orders.csv", "sha256": SHA}], k=3)
    assert done.inputs == [{"path": "orders.csv", "sha256": SHA}] and done.k == 3
