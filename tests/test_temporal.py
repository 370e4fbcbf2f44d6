"""Segments over time: PSI, conservation of customers, stable IDs, the track command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import segmint
from segmint.cli import app
from segmint.data.synth import generate_orders
from segmint.exceptions import SegmintError
from segmint.tracking.snapshots import psi, psi_level, snapshot_dates, track

from .conftest import dataset


def test_psi_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, rng.normal(size=5000)) < 0.02
    assert psi_level(psi(a, rng.normal(1.0, 1, 5000))) == "major"
    # hand-computed: two bins split at the previous median, 50/50 → 80/20
    prev = np.r_[np.zeros(50), np.ones(50)]
    cur = np.r_[np.zeros(80), np.ones(20)]
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi(prev, cur, bins=2) == pytest.approx(expected)


def test_snapshot_dates():
    import datetime as dt

    d = snapshot_dates(dt.datetime(2024, 1, 10), dt.datetime(2024, 6, 15), "month")
    assert d[0] == dt.datetime(2024, 3, 1) and d[-1] == dt.datetime(2024, 6, 15)
    assert d == sorted(set(d))
    with pytest.raises(SegmintError, match="'month' or 'quarter'"):
        snapshot_dates(dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1), "week")


@pytest.fixture(scope="module")
def fitted_with_lines(tmp_path_factory):
    """A run and its cleaned order lines; the engine stays open for the module's tests (a
    run's result holds no connection, so the lines come from the ingest it was fitted on)."""
    from segmint.data import readers
    from segmint.data.ingest import ingest
    from segmint.pipeline.segmentation import segment_ingested

    path = tmp_path_factory.mktemp("track") / "orders.parquet"
    generate_orders(3000, path, seed=8)
    settings = segmint.Settings(inputs=[str(path)], seed=0)
    with readers.engine() as con:
        ing = ingest(settings.inputs, settings, con)
        yield segment_ingested(ing, settings), ing.transactions


@pytest.fixture(scope="module")
def fitted(fitted_with_lines):
    return fitted_with_lines[0]


@pytest.fixture(scope="module")
def lines(fitted_with_lines):
    return fitted_with_lines[1]


def test_migration_conserves_customers(fitted, lines):
    tx = lines
    end = fitted.features.observation_end
    dates = [end - pd.Timedelta(days=d) for d in (180, 90)] + [end]
    t = track(tx, fitted.model, dates)
    counts = t.flows.set_index("snapshot")["customers"]
    for (f, to), part in t.migration.groupby(["from_snapshot", "to_snapshot"]):
        assert part.customers.sum() == counts[to]  # everyone at the later snapshot, once
        assert part[part.from_segment != "new"].customers.sum() == counts[f]  # nobody vanishes
        shares = part.groupby("from_segment").share.sum()
        assert np.allclose(shares, 1.0)
    # the last snapshot is the run itself: same customers, same segments
    last = t.assignments[t.assignments.snapshot == end].set_index("customer_id").segment
    run = fitted.customers.set_index("customer_id").segment
    assert (last.loc[run.index] == run).all()


def test_ids_stable_under_refit_on_unchanged_data(fitted, lines):
    tx = lines
    end = fitted.features.observation_end
    t = track(tx, fitted.model, [end, end], refit=True)
    first = t.assignments.iloc[: len(t.assignments) // 2].segment.to_numpy()
    second = t.assignments.iloc[len(t.assignments) // 2 :].segment.to_numpy()
    assert (first == second).all()
    stay = t.migration[t.migration.from_segment == t.migration.to_segment].customers.sum()
    assert stay == len(first)  # the migration matrix is diagonal
    run = fitted.customers.segment.to_numpy()
    assert (first == run).mean() > 0.99  # refit centres matched to the run's IDs
    assert (t.shifts["shift"] < 1e-9).all() and not t.alerts


def test_track_online_retail_by_month(tmp_path):
    path = dataset("online_retail.csv.gz")
    r = CliRunner().invoke(app, ["track", str(path), "--every", "month", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "track.json").read_text())
    assert len(info["snapshots"]) == 13 and info["customers"][-1] == 4339  # 1 free-only buyer
    for name in ("migration.csv", "sizes.csv", "flows.csv", "drift.csv", "centroid_shift.csv"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "run" / "report.html").is_file()
    html = (tmp_path / "track_report.html").read_text()
    assert "Sankey" in html or "sankey" in html
    drift = pd.read_csv(tmp_path / "drift.csv")
    assert set(drift.level) <= {"stable", "moderate", "major"}
