"""Every command registers its work in the workspace's registry (SQLite and PostgreSQL), runs
are found again by id, prefix, tag, name or ``latest``, and a saved run loads back as the
``RunResult`` a fresh run returns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import segmint
from segmint.cli import app

runner = CliRunner()
FAST = """\
clustering: {stability_runs: 0, bootstrap: 10, k_max: 5}
explain: {drivers: true, drivers_sample: 300, drivers_repeats: 2}
churn: {enabled: false}
clv: {enabled: true}
"""


def invoke(*args: object) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture(scope="module")
def orders(tmp_path_factory) -> Path:
    from segmint.data.synth import generate_orders

    d = tmp_path_factory.mktemp("ws-data")
    generate_orders(300, d / "orders.parquet", seed=11)
    (d / "fast.yaml").write_text(FAST)
    return d


def test_every_command_is_registered(orders, registry_url, tmp_path, monkeypatch):
    """run, compare, track and clv each leave one succeeded row, found by every kind of
    reference; predict, tag and delete work through the registry (SQLite and PostgreSQL)."""
    monkeypatch.setenv("SEGMINT_DATABASE_URL", registry_url)
    ws = tmp_path / "ws"
    data, cfg = orders / "orders.parquet", orders / "fast.yaml"
    common = ("--config", cfg, "--workspace", ws)
    r = invoke("run", data, *common, "--name", "monthly", "--tag", "prod")
    assert r.exit_code == 0, r.output
    r = invoke("compare", data, *common)
    assert r.exit_code == 0, r.output
    r = invoke("track", data, "--config", cfg, "--workspace", ws, "--k", "3")
    assert r.exit_code == 0, r.output
    r = invoke("clv", data, "--calibration-end", "2025-06-30", "--workspace", ws)
    assert r.exit_code == 0, r.output

    r = invoke("runs", "list", "--json", "--workspace", ws)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [row["kind"] for row in rows] == ["clv", "track", "compare", "run"]  # newest first
    assert {row["status"] for row in rows} == {"succeeded"}
    for row in rows:  # each folder is inside the workspace and complete
        folder = Path(row["folder"])
        assert folder.parent == ws.resolve() / "runs" and folder.name == row["id"]
        assert any(folder.glob("*.json")), folder
    run_row, compare_row = rows[3], rows[2]
    assert run_row["name"] == "monthly" and run_row["tags"] == ["prod"]
    assert run_row["customers"] == 300 and 2 <= run_row["k"] <= 5
    assert run_row["inputs"][0]["sha256"] and run_row["metrics"]["silhouette"] > 0
    assert compare_row["metrics"]["algorithm"] != "all"

    # a run is found by id, id prefix, tag, name and latest (latest segmentation: compare)
    for ref, want in [
        (run_row["id"], run_row),
        (run_row["id"][:8], run_row),
        ("prod", run_row),
        ("monthly", run_row),
    ]:
        r = invoke("runs", "show", ref, "--json", "--workspace", ws)
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["id"] == want["id"]
    r = invoke("predict", data, "--run", "latest", "--workspace", ws, "--out", tmp_path / "a.csv")
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(tmp_path / "a.csv")) == 300
    r = invoke("predict", data, "--run", "prod", "--workspace", ws, "--out", tmp_path / "b.csv")
    assert r.exit_code == 0, r.output
    # a clv run has no model: predict says so instead of failing deep inside
    r = invoke(
        "predict", data, "--run", rows[0]["id"], "--workspace", ws, "--out", tmp_path / "c.csv"
    )
    assert r.exit_code == 2 and "clv run" in r.output

    # tags move; delete removes the row and the folder inside the workspace
    r = invoke("runs", "tag", compare_row["id"], "prod", "--workspace", ws)
    assert r.exit_code == 0, r.output
    r = invoke("runs", "show", "prod", "--json", "--workspace", ws)
    assert json.loads(r.output)["id"] == compare_row["id"]
    r = invoke("runs", "delete", run_row["id"], "--yes", "--workspace", ws)
    assert r.exit_code == 0, r.output
    assert not Path(run_row["folder"]).exists()
    r = invoke("runs", "show", run_row["id"], "--workspace", ws)
    assert r.exit_code == 2 and run_row["id"] in r.output


def test_out_still_registers_and_failures_are_recorded(orders, tmp_path):
    ws, data = tmp_path / "ws", orders / "orders.parquet"
    out = tmp_path / "elsewhere"
    r = invoke("run", data, "--config", orders / "fast.yaml", "--workspace", ws, "--out", out)
    assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,amount\n")  # a header and no rows
    r = invoke("run", bad, "--workspace", ws, "--out", tmp_path / "bad-run")
    assert r.exit_code == 2
    rows = json.loads(invoke("runs", "list", "--json", "--workspace", ws).output)
    assert [(row["status"], Path(row["folder"]).name) for row in rows] == [
        ("failed", "bad-run"),
        ("succeeded", "elsewhere"),
    ]
    assert "bad.csv" in rows[0]["error"]
    assert not (tmp_path / "bad-run").exists()
    # deleting a run whose folder is outside the workspace keeps the folder
    r = invoke("runs", "delete", rows[1]["id"], "--yes", "--workspace", ws)
    assert r.exit_code == 0, r.output
    assert (out / "manifest.json").is_file()


def _assert_same(fresh: segmint.RunResult, loaded: segmint.RunResult) -> None:
    def same(a: pd.DataFrame | None, b: pd.DataFrame | None) -> None:
        assert (a is None) == (b is None)
        if a is not None:
            pd.testing.assert_frame_equal(
                a.reset_index(drop=True), b.reset_index(drop=True), check_categorical=False
            )

    same(fresh.customers, loaded.customers)
    same(fresh.segments, loaded.segments)
    same(fresh.k_selection, loaded.k_selection)
    same(fresh.quarantine, loaded.quarantine)
    same(fresh.features.frame, loaded.features.frame)
    same(fresh.embedding_sample, loaded.embedding_sample)
    fi, li = fresh.insights, loaded.insights
    same(fi.segments, li.segments)
    same(fi.tests.tests, li.tests.tests)
    same(fi.tests.posthoc, li.tests.posthoc)
    same(fi.drivers.importance, li.drivers.importance)
    same(fi.anomalies.top, li.anomalies.top)
    same(fi.anomalies.scores, li.anomalies.scores)
    assert fi.headline == li.headline and fi.anomalies.flagged == li.anomalies.flagged
    assert fresh.decision == loaded.decision
    assert fresh.features.numeric == loaded.features.numeric
    assert fresh.features.observation_end == loaded.features.observation_end
    assert fresh.manifest == loaded.manifest.model_copy(update={"artifacts": {}})
    assert fresh.settings == loaded.settings
    np.testing.assert_array_equal(
        fresh.embedding_sample.attrs["index"], loaded.embedding_sample.attrs["index"]
    )
    if fresh.comparison is not None:
        same(fresh.comparison.table, loaded.comparison.table)
        same(fresh.comparison.agreement, loaded.comparison.agreement)
        assert fresh.comparison.recommended == loaded.comparison.recommended


def test_load_run_latest_round_trips(orders, tmp_path):
    ws = tmp_path / "ws"
    settings = segmint.Settings.from_file(orders / "fast.yaml")
    fresh = segmint.segment(orders / "orders.parquet", settings=settings)
    folder = segmint.save(fresh, workspace=ws, name="api")
    loaded = segmint.load_run("latest", workspace=ws)
    # large tables are read on first access, not when the run is loaded
    assert "_customers" in loaded.__dict__ and not isinstance(
        loaded.__dict__["_customers"], pd.DataFrame
    )
    _assert_same(fresh, loaded)
    assert segmint.load_run(folder).manifest == loaded.manifest  # a folder works too
    scores = segmint.predict(loaded, orders / "orders.parquet")
    pd.testing.assert_series_equal(scores["segment"], fresh.customers["segment"], check_names=False)


def test_a_compare_run_loads_with_its_comparison(orders, tmp_path):
    settings = segmint.Settings.from_file(orders / "fast.yaml").merged(
        {"clustering": {"algorithm": "all"}}
    )
    fresh = segmint.segment(orders / "orders.parquet", settings=settings)
    loaded = segmint.load_run(segmint.save(fresh, tmp_path / "cmp", workspace=tmp_path / "ws"))
    _assert_same(fresh, loaded)
    assert set(loaded.diagnostics["method_labels"]) == set(fresh.diagnostics["method_labels"])


def test_an_old_or_foreign_manifest_is_refused_clearly(orders, tmp_path):
    from segmint.exceptions import ArtifactError

    settings = segmint.Settings.from_file(orders / "fast.yaml")
    folder = segmint.save(
        segmint.segment(orders / "orders.parquet", settings=settings),
        tmp_path / "run",
        workspace=tmp_path / "ws",
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(ArtifactError, match=r"cannot read it\. Upgrade segmint"):
        segmint.load_run(folder)
    del manifest["selection"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="selection: Field required"):
        segmint.load_run(folder)


def test_a_result_holds_no_connection(orders, tmp_path, monkeypatch):
    """``run`` closes its DuckDB engine and removes the engine's temporary store before it
    returns: a long-lived process (the API server) leaks neither."""
    import os

    from segmint.data import readers

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    settings = segmint.Settings.from_file(orders / "fast.yaml")
    result = segmint.segment(orders / "orders.parquet", settings=settings)
    assert list(tmp_path.glob(f"segmint-store-{os.getpid()}-*")) == []
    assert len(readers._STORES) == 0
    assert not _engines_in(result)
    assert len(result.quarantine) == sum(result.manifest.rows.quarantined.values())


def _engines_in(value: object, depth: int = 0, seen: set[int] | None = None) -> list[str]:
    """Any DuckDB or Ibis object reachable from ``value`` through attributes, dicts and
    lists (a few levels deep: a result is plain values all the way down)."""
    seen = set() if seen is None else seen
    if id(value) in seen or depth > 4:
        return []
    seen.add(id(value))
    module = type(value).__module__.split(".")[0]
    if module in {"duckdb", "ibis"}:
        return [type(value).__qualname__]
    if isinstance(value, pd.DataFrame | pd.Series | np.ndarray | str | bytes | int | float):
        return []
    children = (
        list(value.values())
        if isinstance(value, dict)
        else list(value)
        if isinstance(value, list | tuple)
        else list(vars(value).values())
        if hasattr(value, "__dict__")
        else []
    )
    return [hit for child in children for hit in _engines_in(child, depth + 1, seen)]
