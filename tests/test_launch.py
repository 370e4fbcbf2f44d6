"""Runs started in worker processes (``pipeline.launch``, ``pipeline.worker``): the row is
registered for the worker's pid before the worker starts work, the worker adopts it, a worker
that dies before adopting fails its row with the reason, a killed worker leaves it stale, the
slots bound concurrent workers across launchers, and uploaded file names are made safe."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segmint.config import Settings
from segmint.data import readers
from segmint.exceptions import InputError, RunStateError
from segmint.pipeline import uploads
from segmint.pipeline.jobs import job
from segmint.pipeline.launch import LOG_FILE, Launcher
from segmint.pipeline.uploads import safe_file_name
from segmint.store.workspace import Workspace

FAST = {"clustering": {"stability_runs": 0, "bootstrap": 10, "k_max": 5}}


def wait_until(condition, timeout: float = 180.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture(scope="module")
def orders(tmp_path_factory) -> Path:
    from segmint.data.synth import generate_orders

    path = tmp_path_factory.mktemp("launch-data") / "orders.csv"
    generate_orders(3000, path, seed=3)
    return path


@pytest.fixture
def ws(tmp_path):
    with Workspace.open(tmp_path / "ws") as w:
        yield w


# -- file names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, made",
    [
        ("orders.csv", "01-orders.csv"),
        ("../../etc/passwd.csv", "01-passwd.csv"),
        ("C:\\Users\\me\\Kunden Ä.XLSX", "01-Kunden_A.xlsx"),
        ("lines.csv.gz", "01-lines.csv.gz"),
        ("x.parquet", "01-x.parquet"),
        ("..csv", "01-upload.csv"),
        ("-rf .tsv", "01-rf.tsv"),
    ],
)
def test_upload_names_keep_only_a_safe_stem_and_a_readable_suffix(given, made):
    assert safe_file_name(given, 1) == made


@pytest.mark.parametrize("given", ["a.xls", "a.json", "noext", "", None, "a.xlsx.gz", "a.gz"])
def test_upload_names_the_readers_cannot_read_are_refused(given):
    with pytest.raises(InputError) as info:
        safe_file_name(given, 1)
    assert info.value.code == "input.unreadable"
    assert ".parquet" in str(info.value)


def test_the_accepted_suffixes_are_the_readers_own():
    assert set(uploads.CSV_SUFFIXES) == readers.CSV_SUFFIXES
    assert set(uploads.PARQUET_SUFFIXES) == readers.PARQUET_SUFFIXES
    assert set(uploads.EXCEL_SUFFIXES) == readers.EXCEL_SUFFIXES


# -- registering for another process, adopting ------------------------------------------------


def test_a_row_registered_for_another_process_reads_stale_when_it_is_gone(ws):
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    record = ws.registry.begin(
        kind="run", folder=ws.folder_for("x"), inputs=[], config={}, config_hash=None,
        owner_pid=child.pid,
    )  # fmt: skip
    assert (record.pid, record.state) == (child.pid, "running")
    child.communicate(b"")
    assert ws.registry.get(record.id).state == "stale"


def test_job_adopts_only_a_running_row_registered_for_this_process(ws):
    settings = Settings()
    mine = ws.registry.begin(
        kind="run", folder=ws.folder_for("a"), inputs=[], config={}, config_hash=None
    )
    other = ws.registry.begin(
        kind="run", folder=ws.folder_for("b"), inputs=[], config={}, config_hash=None,
        owner_pid=1,
    )  # fmt: skip
    with (
        pytest.raises(RunStateError, match="not for this process"),
        job(ws, "run", settings, adopt=other.id),
    ):
        pass
    with (
        pytest.raises(RunStateError, match="only a running compare run"),
        job(ws, "compare", settings, adopt=mine.id),
    ):
        pass
    with pytest.raises(RuntimeError), job(ws, "run", settings, adopt=mine.id) as work:
        assert work.id == mine.id and work.folder == Path(mine.folder)
        raise RuntimeError("boom")
    assert ws.registry.get(mine.id).error == "RuntimeError: boom"
    with pytest.raises(RunStateError, match="failed run"), job(ws, "run", settings, adopt=mine.id):
        pass
    assert ws.registry.count() == 2  # adopting never begins a new row


def test_an_adopted_row_whose_folder_cannot_be_reserved_is_failed(ws, tmp_path):
    folder = tmp_path / "not-a-folder"
    folder.write_text("a file where the run folder should be")
    record = ws.registry.begin(kind="run", folder=folder, inputs=[], config={}, config_hash=None)
    with pytest.raises(Exception) as info, job(ws, "run", Settings(), adopt=record.id):
        pass
    row = ws.registry.get(record.id)
    assert row.state == "failed" and getattr(info.value, "code", "") in row.error


# -- workers ----------------------------------------------------------------------------------


def start(launcher: Launcher, data: Path, **settings) -> tuple[str, Path]:
    with launcher.reserve() as reservation:
        copy = reservation.folder / "01-orders.csv"
        shutil.copy(data, copy)
        record = launcher.start(reservation, Settings.build({**FAST, **settings}), [copy])
    assert record.status == "running" and record.pid != os.getpid()
    return record.id, reservation.folder


def adopted(folder: Path, run_id: str) -> bool:
    log = folder / LOG_FILE
    return log.is_file() and f"run {run_id} adopted:" in log.read_text()


def gone(pid: int) -> bool:
    """Not running and reaped (no zombie left)."""
    return not Path(f"/proc/{pid}").exists()


def test_a_worker_runs_the_registered_run_and_records_its_end(ws, orders):
    launcher = Launcher(ws, max_jobs=1)
    t0 = time.monotonic()
    run_id, folder = start(launcher, orders)
    assert time.monotonic() - t0 < 2.0  # the pipeline's imports are the worker's, not ours
    pid = ws.registry.get(run_id).pid
    row = wait_until(lambda: (r := ws.registry.get(run_id)).state != "running" and r)
    assert row.state == "succeeded", row.error
    assert row.pid == pid and row.customers == 3000 and row.inputs[0]["sha256"]
    assert (ws.folder_for(run_id) / "manifest.json").is_file()
    assert launcher.wait(30) and gone(pid)
    assert f"run {run_id} succeeded" in (folder / LOG_FILE).read_text()


def test_a_worker_that_dies_before_adopting_fails_its_row_with_the_reason(ws, orders):
    launcher = Launcher(ws, max_jobs=1, python="/bin/false")
    run_id, _ = start(launcher, orders)
    assert launcher.wait(30)
    row = ws.registry.get(run_id)
    assert row.state == "failed"
    assert "exited with status 1 before it started the run" in row.error


def test_a_killed_worker_leaves_a_stale_row_and_no_zombie(ws, orders):
    launcher = Launcher(ws, max_jobs=1)
    run_id, folder = start(launcher, orders, clustering={"k_max": 8})
    wait_until(lambda: adopted(folder, run_id))
    pid = ws.registry.get(run_id).pid
    os.kill(pid, signal.SIGKILL)
    assert launcher.wait(30) and gone(pid)
    row = ws.registry.get(run_id)
    assert (row.status, row.state, row.error) == ("running", "stale", None)
    with pytest.raises(RunStateError, match="stale"):
        launcher.cancel(run_id)


def test_cancel_before_and_after_adoption_records_cancelled(ws, orders):
    launcher = Launcher(ws, max_jobs=2)
    early, _ = start(launcher, orders)
    launcher.cancel(early)  # the worker is still importing: it never adopts the row
    late, folder = start(launcher, orders, clustering={"k_max": 8})
    wait_until(lambda: adopted(folder, late))
    pids = [ws.registry.get(i).pid for i in (early, late)]
    assert launcher.cancel(late).state == "running"  # until the worker records its end
    assert launcher.wait(60) and all(gone(p) for p in pids)
    for run_id in (early, late):
        row = ws.registry.get(run_id)
        assert (row.state, row.error) == ("failed", "cancelled")
        assert not ws.folder_for(run_id).exists()  # no partial run folder
    with pytest.raises(RunStateError, match="failed"):
        launcher.cancel(late)


def test_a_worker_deaf_to_sigterm_is_killed_after_the_grace(ws, tmp_path):
    deaf = tmp_path / "deaf.sh"  # a 'python' that ignores SIGTERM and never adopts
    deaf.write_text("#!/bin/sh\ntrap '' TERM\nexec sleep 60\n")
    deaf.chmod(0o755)
    launcher = Launcher(ws, max_jobs=1, python=str(deaf), cancel_grace=0.5)
    with launcher.reserve() as reservation:
        record = launcher.start(reservation, Settings(), [tmp_path / "x.csv"])
    launcher.cancel(record.id)
    assert launcher.wait(30)
    row = ws.registry.get(record.id)
    assert row.state == "failed" and row.error.startswith("cancelled (the worker did not stop")


def test_slots_bound_workers_across_launchers_and_free_when_released(ws):
    first, second = Launcher(ws, max_jobs=1), Launcher(ws, max_jobs=1)
    held = first.reserve()
    assert held is not None and held.folder.is_dir()
    assert second.reserve() is None  # another server process on the same workspace
    held.release()
    assert not held.folder.exists()
    again = second.reserve()
    assert again is not None
    again.release()


def test_another_launcher_cancels_through_the_registry(ws, orders):
    starter, other = Launcher(ws, max_jobs=1), Launcher(ws, max_jobs=1)  # two server processes
    run_id, folder = start(starter, orders, clustering={"k_max": 8})
    wait_until(lambda: adopted(folder, run_id))
    pid = ws.registry.get(run_id).pid
    assert other.cancel(run_id).id == run_id
    assert starter.wait(60) and gone(pid)
    row = ws.registry.get(run_id)
    assert (row.state, row.error) == ("failed", "cancelled")


def test_a_pid_whose_start_token_differs_is_never_signalled(ws):
    import sqlalchemy as sa

    from segmint.store.schema import runs_table

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = ws.registry.begin(
            kind="run", folder=ws.folder_for("s"), inputs=[], config={}, config_hash=None,
            owner_pid=sleeper.pid,
        )  # fmt: skip
        assert ws.registry.get(record.id).state == "running"

        def recycled(conn: sa.Connection) -> None:  # as if the pid now names another process
            conn.execute(
                runs_table.update()
                .where(runs_table.c.id == record.id)
                .values(proc_start="another-boot:1")
            )

        ws.registry._database.write(recycled)
        with pytest.raises(RunStateError, match="stale"):
            Launcher(ws).cancel(record.id)
        assert sleeper.poll() is None  # not signalled
    finally:
        sleeper.kill()
        sleeper.wait()


def test_workers_get_no_api_key_and_a_share_of_the_cpus(ws, monkeypatch):
    monkeypatch.setenv("SEGMINT_API_KEY", "a-key-workers-never-need-0123")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the operator's choice stands
    env = Launcher(ws, max_jobs=64)._worker_env()
    assert "SEGMINT_API_KEY" not in env
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "3"
