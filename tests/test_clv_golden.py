"""Golden values: on the CDNOW 1/10th sample, segmint's BG/NBD and Gamma-Gamma give the
published estimates.

Fader, Hardie & Lee, "Counting Your Customers the Easy Way" (Marketing Science 24(2), 2005)
and "RFM and CLV: Using Iso-Value Curves" (JMR 2005), and every reference implementation: a
39-week calibration period 1997-01-01..1997-09-30 (the last day included), time in weeks,
repeat purchases counted per day, zero-value purchases counted as purchases; the spend model
on the repeat buyers' mean spend per repeat purchase day. ``lifetimes`` 0.11.3 gets the
second set of values (to 4 decimals) from the same file.

The data (../shared/datasets/cdnow_sample.txt) is read, never copied into the repository.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from segmint.cli import app
from segmint.config import Settings
from segmint.pipeline.clv import validate_clv

from .conftest import dataset

PUBLISHED = {
    ("BG/NBD", "r"): 0.243,
    ("BG/NBD", "alpha"): 4.414,
    ("BG/NBD", "a"): 0.793,
    ("BG/NBD", "b"): 2.426,
    ("Gamma-Gamma", "p"): 6.25,
    ("Gamma-Gamma", "q"): 3.74,
    ("Gamma-Gamma", "gamma"): 15.44,
}
LIFETIMES = {
    ("BG/NBD", "r"): 0.2426,
    ("BG/NBD", "alpha"): 4.4136,
    ("BG/NBD", "a"): 0.7929,
    ("BG/NBD", "b"): 2.4259,
    ("Gamma-Gamma", "p"): 6.2496,
    ("Gamma-Gamma", "q"): 3.7442,
    ("Gamma-Gamma", "gamma"): 15.4435,
}
CUSTOMERS = 2357  # every customer of the sample first bought in 1997 Q1
REPEAT_BUYERS = 946
CALIBRATION_END = "1997-09-30"  # the last day of FHL's 39-week calibration period

# Default settings throughout: the sample has no order id, so its 21 rows that repeat another
# row exactly are kept as purchases (as in the published data), and 'dollar_value' is
# recognised as the amount. A user gets the published values without telling segmint anything.


def sig3(v: float) -> float:
    return float(f"{v:.3g}")


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    path = dataset("cdnow_sample.txt")
    frame = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["customer_id", "customer_index", "date", "number_of_cds", "dollar_value"],
        dtype={"customer_id": str},
    )
    frame["date"] = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
    return frame[["customer_id", "date", "number_of_cds", "dollar_value"]]


def check_params(estimates: dict[tuple[str, str], float]) -> None:
    assert set(estimates) == set(PUBLISHED)
    for key, published in PUBLISHED.items():
        assert sig3(estimates[key]) == sig3(published), (key, estimates[key], published)
    for key, theirs in LIFETIMES.items():
        # lifetimes prints 4 decimals: within half a unit of the last one, and 1e-4 relative
        assert estimates[key] == pytest.approx(theirs, rel=1e-4, abs=0), key
        assert abs(estimates[key] - theirs) <= 0.5e-4 + 1e-6, (key, estimates[key], theirs)


@pytest.fixture(scope="module")
def validation(cdnow: pd.DataFrame):
    settings = Settings()
    return validate_clv(cdnow, dt.date.fromisoformat(CALIBRATION_END), settings)


def test_published_estimates(validation):
    res = validation
    assert len(res.customers) == CUSTOMERS
    assert res.diagnostics["bgnbd"]["n"] == CUSTOMERS
    assert res.diagnostics["gamma_gamma"]["n"] == REPEAT_BUYERS
    assert res.diagnostics["bgnbd"]["repeat_buyers"] == REPEAT_BUYERS
    check_params({(r.model, r.param): r.estimate for r in res.params.itertuples()})


def test_summary_follows_the_published_conventions(validation, cdnow: pd.DataFrame):
    """x, t_x, T, m and the holdout counts equal a plain pandas computation of FHL's
    conventions, and FHL's own numbers for their first customer (x 2, t_x 30.43,
    T 38.86)."""
    got = validation.customers.set_index("customer_id").sort_index()
    end = pd.Timestamp(CALIBRATION_END)
    days = cdnow.groupby(["customer_id", "date"], as_index=False)["dollar_value"].sum()
    cal = days[days.date <= end].sort_values(["customer_id", "date"])
    per = cal.groupby("customer_id")
    first, last, n = per.date.min(), per.date.max(), per.date.size()
    repeat_spend = per.dollar_value.sum() - per.dollar_value.first()
    hold = days[days.date > end].groupby("customer_id").size()
    assert list(got.index) == sorted(first.index)
    assert (got.x == n - 1).all()
    assert got.t_x.to_numpy() == pytest.approx(((last - first).dt.days / 7).to_numpy())
    assert got["T"].to_numpy() == pytest.approx(((end - first).dt.days / 7).to_numpy())
    expected_m = (repeat_spend / (n - 1)).where(n > 1)
    assert got.m.fillna(-1).to_numpy() == pytest.approx(expected_m.fillna(-1).to_numpy())
    assert (got.holdout_x == hold.reindex(got.index, fill_value=0)).all()
    c1 = got.loc["00004"]
    assert (c1.x, round(c1.t_x, 2), round(c1["T"], 2)) == (2, 30.43, 38.86)
    assert got["T"].max() == pytest.approx(272 / 7)  # first purchase 1997-01-01
    assert validation.diagnostics["holdout"]["length"] == 39.0  # 1997-10-01..1998-06-30
    assert ((got.m == 0) & (got.x > 0)).sum() == 0  # the $0 purchases are all first ones


def test_cli_reproduces_the_published_estimates(cdnow: pd.DataFrame, tmp_path):
    """``segmint clv`` on the sample as a CSV file with YYYYMMDD dates."""
    csv = tmp_path / "cdnow.csv"
    out = cdnow.assign(date=cdnow.date.dt.strftime("%Y%m%d"))
    out.to_csv(csv, index=False)
    r = CliRunner().invoke(
        app, ["clv", str(csv), "--calibration-end", CALIBRATION_END, "--out", str(tmp_path / "clv")]
    )
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "clv" / "clv_params.json").read_text())
    assert saved["calibration_end"].startswith(CALIBRATION_END)
    assert saved["time_unit"] == "weeks"
    d = saved["diagnostics"]
    assert d["periods"]["calibration"] == ["1997-01-01", CALIBRATION_END]
    assert d["periods"]["holdout"] == ["1997-10-01", "1998-06-30"]
    assert d["holdout"]["customers"] == CUSTOMERS and d["bgnbd"]["n"] == CUSTOMERS
    assert d["gamma_gamma"]["n"] == REPEAT_BUYERS
    estimates = {(p["model"], p["param"]): p["estimate"] for p in saved["params"]}
    assert all(math.isfinite(v) for v in estimates.values())
    check_params(estimates)
