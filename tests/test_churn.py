"""Churn: the time split is enforced, snapshot features see only the past, labels are right."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from segmint.config import Churn, Settings
from segmint.data import readers
from segmint.data.ingest import ingest
from segmint.data.synth import generate_orders
from segmint.exceptions import SegmintError
from segmint.features import build_features
from segmint.predictive import churn as churn_mod
from segmint.predictive.churn import (
    LeakageError,
    Plan,
    check_time_split,
    churn_risk,
    plan_snapshots,
)


@pytest.fixture(scope="module")
def orders(tmp_path_factory):
    path = tmp_path_factory.mktemp("churn") / "orders.parquet"
    generate_orders(2500, path, seed=4)
    return path


@pytest.fixture(scope="module")
def tx(orders):
    return ingest([str(orders)], Settings(), readers.connect()).transactions


def test_plan_is_a_time_split():
    rules = Churn(horizon_days=60, train_snapshots=4, step_days=30, min_history_days=60)
    plan = plan_snapshots(dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1), rules)
    assert plan.test == dt.datetime(2025, 1, 1) - dt.timedelta(days=60)
    assert len(plan.train) == 4 and plan.train == sorted(plan.train)
    for s in plan.train:
        assert s + dt.timedelta(days=60) <= plan.test
        assert s >= dt.datetime(2024, 1, 1) + dt.timedelta(days=60)


def test_leaky_plan_is_refused(tx, monkeypatch):
    leaky = Plan(train=[dt.datetime(2025, 10, 1)], test=dt.datetime(2025, 11, 1), horizon_days=90)
    with pytest.raises(LeakageError, match="2025-10-01"):
        check_time_split(leaky)
    # churn_risk re-checks whatever plan it is given: a future snapshot cannot reach training
    monkeypatch.setattr(churn_mod, "plan_snapshots", lambda *a, **k: leaky)
    feats = build_features(tx, None)
    with pytest.raises(LeakageError):
        churn_risk(tx, feats.frame, feats.observation_end, Churn(horizon_days=90))


def test_snapshot_features_see_only_the_past(orders, tx):
    at = dt.datetime(2025, 6, 1)
    snap = churn_mod.snapshot(tx, at, horizon_days=None).set_index("customer_id")
    raw = pd.read_parquet(orders)
    past = raw[raw.ts < at]
    ing = ingest([past], Settings(), readers.connect())
    direct = build_features(ing.transactions, None, observation_end=at).frame
    direct = direct.set_index("customer_id").loc[snap.index]
    for col in ("recency_days", "frequency", "monetary", "tenure_days"):
        pd.testing.assert_series_equal(snap[col], direct[col], check_names=False, rtol=1e-9)


def test_labels_match_the_raw_data(orders, tx):
    at = dt.datetime(2025, 6, 1)
    snap = churn_mod.snapshot(tx, at, horizon_days=90).set_index("customer_id")
    raw = pd.read_parquet(orders)
    window = raw[(raw.ts >= at) & (raw.ts < at + dt.timedelta(days=90)) & (raw.quantity > 0)]
    window = window[~window.order_id.str.startswith("C")]
    bought = set(window.customer_id)
    expected = ~snap.index.isin(bought)
    assert (snap["churned"].to_numpy() == expected).all()
    assert 0.05 < snap["churned"].mean() < 0.95


def test_churn_model_beats_chance_and_scores_everyone(tx):
    feats = build_features(tx, None)
    res = churn_risk(tx, feats.frame, feats.observation_end, Churn(), seed=0)
    m = res.metrics
    assert m["model"]["auc"] > 0.7
    assert 0 <= m["model"]["brier"] <= 0.25
    assert "auc" in m["baseline_bgnbd"] or "skipped" in m["baseline_bgnbd"]
    assert len(res.scores) == len(feats.frame)
    assert res.scores.churn_probability.between(0, 1).all()
    assert len(res.calibration) >= 5


def test_too_little_history_is_a_clear_error():
    with pytest.raises(SegmintError, match="at least 90 days of history"):
        plan_snapshots(dt.datetime(2025, 1, 1), dt.datetime(2025, 5, 1), Churn())


def test_sampled_snapshots_are_deterministic_subsets(tx):
    at = dt.datetime(2025, 6, 1)
    full = churn_mod.snapshot(tx, at, 90).set_index("customer_id")
    a = churn_mod.snapshot(churn_mod.sample_lines(tx, 0.3), at, 90).set_index("customer_id")
    b = churn_mod.snapshot(churn_mod.sample_lines(tx, 0.3), at, 90).set_index("customer_id")
    assert a.index.equals(b.index)
    assert 0.2 < len(a) / len(full) < 0.4
    assert set(a.index) <= set(full.index)
    pd.testing.assert_series_equal(a["churned"], full.loc[a.index, "churned"])
