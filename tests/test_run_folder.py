"""The run folder is entirely the old run or entirely the new one: interrupted writes (SIGINT,
SIGTERM, SIGKILL, a full disk) leave the old run whole and nothing behind; a second writer,
an output path that is a file, an unwritable place or a folder segmint did not write are
refused before the pipeline runs; predict refuses a folder mixing two runs' files."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segmint.cli import app
from segmint.exceptions import SegmintError

runner = CliRunner()
FAST = """\
clustering: {k: 3, stability_runs: 0, bootstrap: 10}
explain: {drivers: false}
churn: {enabled: false}
clv: {enabled: false}
"""
# `segmint ...` in a child process whose run pauses inside the write (after the new
# customers.parquet is in the partial folder) until the test says go or kills it.
PAUSED = r"""
import os, signal, sys, time
from pathlib import Path
import segmint.store.artifacts as store

signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored

ready, go = Path(os.environ["SEG_READY"]), Path(os.environ["SEG_GO"])
original = store.write_quarantine

def paused(quarantine, path):
    original(quarantine, path)
    deadline = time.monotonic() + 120
    while not (path.parent / "customers.parquet").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    ready.write_text(str(path.parent))
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)

store.write_quarantine = paused
sys.argv = ["segmint", *sys.argv[1:]]
from segmint.cli import main
main()
"""


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(parent: Path, name: str = "run") -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, "child never reached the write"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small order lines (two data sets), a fast config and a finished run folder."""
    from segmint.data.synth import generate_orders

    d = tmp_path_factory.mktemp("runfolder")
    generate_orders(400, d / "orders.parquet", seed=3)
    generate_orders(400, d / "other.parquet", seed=4)
    (d / "fast.yaml").write_text(FAST)
    r = invoke("run", d / "orders.parquet", "--config", d / "fast.yaml", "--out", d / "run")
    assert r.exit_code == 0, r.output
    return d


@pytest.fixture
def old_run(data, tmp_path):
    """A copy of the finished run, to be overwritten."""
    shutil.copytree(data / "run", tmp_path / "run")
    return tmp_path / "run"


def start_paused(data: Path, out: Path, tmpdir: Path, seed: int = 2) -> tuple:
    tmpdir.mkdir(exist_ok=True)
    ready, go = out.parent / "ready", out.parent / "go"
    env = {**os.environ, "TMPDIR": str(tmpdir), "SEG_READY": str(ready), "SEG_GO": str(go)}
    args = ["run", data / "orders.parquet", "--config", data / "fast.yaml", "--seed", seed]
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED, *map(str, args), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(ready, proc)
    return proc, Path(ready.read_text()), go


def registry_row(pid: int):
    """The registry row of the run the process ``pid`` started (in the session's workspace)."""
    from segmint.store.workspace import Workspace

    with Workspace.open() as ws:
        rows = [r for r in ws.registry.list(limit=1000) if r.pid == pid]
    assert len(rows) == 1, rows
    return rows[0]


def stores(tmpdir: Path, pid: int) -> list[Path]:
    return list(tmpdir.glob(f"segmint-store-{pid}-*"))


@pytest.mark.parametrize(
    "sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)]
)
def test_interrupted_write_leaves_the_old_run(data, old_run, tmp_path, sig, code, monkeypatch):
    before = snapshot(old_run)
    tmpdir = tmp_path / "tmp"
    proc, partial, _ = start_paused(data, old_run, tmpdir)
    # the new run is half written beside the old one; its query engine (and the engine's
    # temporary store) was closed before the writing began
    assert partial.parent == old_run.parent and (partial / "customers.parquet").is_file()
    assert stores(tmpdir, proc.pid) == []
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err
    assert snapshot(old_run) == before  # every file of the old run, byte for byte
    # the registry never says the interrupted run succeeded: failed, or stale when killed
    row = registry_row(proc.pid)
    assert row.state == ("stale" if sig == signal.SIGKILL else "failed"), row
    if sig != signal.SIGKILL:
        reason = "interrupted (Ctrl-C)" if sig == signal.SIGINT else "terminated (SIGTERM)"
        assert row.error == reason and row.finished is not None
    manifest = json.loads((old_run / "manifest.json").read_text())
    r = invoke("predict", "--run", old_run, data / "orders.parquet", "--out", tmp_path / "s.csv")
    assert r.exit_code == 0, r.output
    assert manifest["created"][:16] in " ".join(r.output.split())
    if sig != signal.SIGKILL:
        assert leftovers(old_run.parent) == []  # no partial folder, no lock
        return
    # SIGKILL runs no cleanup: the next run into the folder (or any run) removes the rest
    assert leftovers(old_run.parent)
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    args = ["run", data / "orders.parquet", "--config", data / "fast.yaml", "--seed", 5]
    r = invoke(*args, "--out", old_run)
    assert r.exit_code == 0, r.output
    assert leftovers(old_run.parent) == [] and stores(tmpdir, proc.pid) == []
    assert json.loads((old_run / "manifest.json").read_text())["config"]["seed"] == 5


def test_second_run_into_the_same_folder_is_refused(data, old_run, tmp_path):
    proc, _, go = start_paused(data, old_run, tmp_path / "tmp")
    try:
        t0 = time.perf_counter()
        r = invoke("run", data / "orders.parquet", "--config", data / "fast.yaml", "--out", old_run)
        assert r.exit_code == 2, r.output
        text = " ".join(r.output.split())
        assert "another segmint process" in text and f"pid {proc.pid}" in text
        assert time.perf_counter() - t0 < 10  # at once, not after a pipeline
    finally:
        go.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    # the first run finished and swapped its folder in whole
    manifest = json.loads((old_run / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 2 and leftovers(old_run.parent) == []


def test_lock_refuses_another_thread():
    from segmint.store.artifacts import RUN
    from segmint.store.folders import reserve

    out = Path(tempfile.mkdtemp()) / "run"
    held, release = threading.Event(), threading.Event()

    def hold():
        with reserve(out, RUN):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(30)
        with pytest.raises(SegmintError, match=f"pid {os.getpid()}"), reserve(out, RUN):
            pass
    finally:
        release.set()
        t.join(30)
    assert not out.exists() and leftovers(out.parent) == []
    shutil.rmtree(out.parent)


@pytest.mark.parametrize("where", ["quarantine", "arrow"])
def test_full_disk_keeps_the_old_run(data, old_run, monkeypatch, where):
    import pyarrow.csv

    import segmint.store.artifacts as store

    def full(*args, **kwargs):
        if where == "quarantine":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[1]))
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    target = (store, "write_quarantine") if where == "quarantine" else (pyarrow.csv, "write_csv")
    monkeypatch.setattr(*target, full)
    before = snapshot(old_run)
    r = invoke("run", data / "orders.parquet", "--config", data / "fast.yaml", "--out", old_run)
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    name = "quarantine.parquet" if where == "quarantine" else "customers.csv"
    assert f"writing {name} failed: no space left on device" in text, text
    assert "previous run folder" in text and "unchanged" in text
    assert snapshot(old_run) == before and leftovers(old_run.parent) == []


def _refused(tmp_path, monkeypatch, out, *expect):
    """``run --out out`` is refused before the pipeline starts, writing nothing."""
    import segmint.pipeline.clustering

    called = []
    monkeypatch.setattr(segmint.pipeline.segmentation, "run", lambda *a, **k: called.append(1))
    orders = tmp_path / "orders.csv"
    orders.write_text("CustomerID,InvoiceNo,InvoiceDate,Quantity,UnitPrice\nc1,1,2024-01-01,1,2\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    r = invoke("run", orders, "--out", out)
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert text.count("error [output.") == 1, text
    assert text.endswith("(command-line option --out)"), text
    for piece in expect:
        assert piece in text, (piece, text)
    assert called == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return text


def test_out_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "out.csv").write_text("precious")
    _refused(tmp_path, monkeypatch, tmp_path / "out.csv", "is a file, not a folder")
    assert (tmp_path / "out.csv").read_text() == "precious"


def test_out_runs_through_a_file(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    _refused(tmp_path, monkeypatch, tmp_path / "afile" / "run", "afile is a file")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/sys and /proc are Linux")
@pytest.mark.parametrize("out", ["/sys/kernel/segmint-test-run", "/proc/segmint-test/run"])
def test_out_cannot_be_written_even_by_root(tmp_path, monkeypatch, out):
    # sysfs refuses new entries (EACCES/EPERM, or EROFS when mounted read-only) and procfs
    # has no such folder, for root too, on a host or in a container
    assert Path("/sys/kernel").is_dir() and Path("/proc/self").is_dir()
    _refused(tmp_path, monkeypatch, Path(out), "cannot write the output folder here")
    assert not os.path.lexists(out)


def test_out_is_a_folder_segmint_did_not_write(tmp_path, monkeypatch):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years of work")
    text = _refused(tmp_path, monkeypatch, mine, "not a segmint run folder", "thesis.docx")
    assert "no manifest.json" in text
    assert [p.name for p in mine.iterdir()] == ["thesis.docx"]


def test_run_folder_holding_user_files_is_not_replaced(data, old_run, monkeypatch):
    (old_run / "my_notes.txt").write_text("keep me")
    before = snapshot(old_run)
    _refused(old_run.parent, monkeypatch, old_run, "files segmint did not write", "my_notes.txt")
    assert snapshot(old_run) == before


def test_every_file_a_run_writes_is_known(data, tmp_path, monkeypatch):
    # a file missing from store.RUN would make the next run into the folder refuse it; the
    # comparison (two methods, for speed), drivers and charts add the optional files
    import segmint.pipeline.clustering
    from segmint.store.artifacts import RUN

    monkeypatch.setattr(segmint.pipeline.clustering, "ALGORITHMS", ("kmeans", "ward"))
    drivers = "drivers: true, drivers_repeats: 2, drivers_sample: 200"
    (tmp_path / "full.yaml").write_text(FAST.replace("drivers: false", drivers))
    args = ["--config", tmp_path / "full.yaml", "--algorithm", "all", "--charts"]
    r = invoke("run", data / "orders.parquet", *args, "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"comparison.csv", "drivers.csv", "charts"} <= written <= RUN.files
    args = ["--config", data / "fast.yaml", "--out", tmp_path / "run"]
    r = invoke("run", data / "orders.parquet", *args)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "run" / "comparison.csv").exists()  # the whole folder was replaced


def test_predict_refuses_a_model_from_another_run(data, old_run, tmp_path):
    # same settings, other data: the config hashes agree, only the content hash tells
    other = tmp_path / "other"
    r = invoke("run", data / "other.parquet", "--config", data / "fast.yaml", "--out", other)
    assert r.exit_code == 0, r.output
    shutil.copy(other / "model.skops", old_run / "model.skops")
    r = invoke("predict", "--run", old_run, data / "orders.parquet", "--out", tmp_path / "s.csv")
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "does not match the run's manifest" in text and "mixes files from two runs" in text
    assert not (tmp_path / "s.csv").exists()


def test_inputs_are_fingerprinted(data):
    manifest = json.loads((data / "run" / "manifest.json").read_text())
    entry = manifest["inputs"][0]
    raw = (data / "orders.parquet").read_bytes()
    assert entry["sha256"] == hashlib.sha256(raw).hexdigest() and entry["bytes"] == len(raw)
    model = (data / "run" / "model.skops").read_bytes()
    assert manifest["artifacts"]["model.skops"]["sha256"] == hashlib.sha256(model).hexdigest()
    from segmint.store.loading import load_run_model

    meta = load_run_model(data / "run").meta
    assert meta["inputs"][0]["sha256"] == entry["sha256"] and meta["created"] == manifest["created"]


def test_dataframe_inputs_hash_their_content():
    import pandas as pd

    from segmint.digest import fingerprint

    df = pd.DataFrame({"customer_id": ["a", "b"], "spend": [1.0, 2.0]})
    same = fingerprint(df.copy())["sha256"]
    assert fingerprint(df)["sha256"] == same
    assert fingerprint(df.assign(spend=[1.0, 2.5]))["sha256"] != same
    assert fingerprint(df.rename(columns={"spend": "total"}))["sha256"] != same


def toy_kind():
    from segmint.store.folders import Kind

    return Kind("toy folder", "marker.json", frozenset({"marker.json", "data.txt"}))


def write_toy(out: Path, text: str) -> None:
    from segmint.store.folders import writing

    with writing(out, toy_kind()) as part:
        (part / "data.txt").write_text(text)
        (part / "marker.json").write_text("{}")


def test_rename_aside_when_renameat2_is_missing(tmp_path, monkeypatch):
    # other systems (or filesystems without RENAME_EXCHANGE) swap by two renames
    import segmint.store.folders as folders

    write_toy(tmp_path / "out", "old")
    monkeypatch.setattr(folders, "_renameat2", None)
    write_toy(tmp_path / "out", "new")
    assert (tmp_path / "out" / "data.txt").read_text() == "new"
    assert leftovers(tmp_path, "out") == []


def test_rename_aside_interrupted_between_renames_is_repaired(tmp_path):
    # killed after moving the old folder aside and before moving the new one in: the next
    # writer puts the old folder back before anything else
    old = tmp_path / ".out.old-999999-abcd1234"
    old.mkdir()
    (old / "marker.json").write_text("{}")
    (old / "data.txt").write_text("old")
    with reserve_toy(tmp_path / "out"):
        assert (tmp_path / "out" / "data.txt").read_text() == "old"
    assert (tmp_path / "out" / "data.txt").read_text() == "old"
    assert leftovers(tmp_path, "out") == []


def test_failed_write_removes_the_parents_it_made(tmp_path):
    with pytest.raises(RuntimeError), reserve_toy(tmp_path / "a" / "b" / "out"):
        raise RuntimeError("pipeline failed")
    assert list(tmp_path.iterdir()) == []


def reserve_toy(out: Path):
    from segmint.store.folders import reserve

    return reserve(out, toy_kind())
