"""The same data through every input format gives the same result."""

import numpy as np
import pandas as pd
import pytest

import segmint
from segmint.exceptions import InputError

from .conftest import dataset

FEATURES = ["Annual Income (k$)", "Spending Score (1-100)"]


@pytest.fixture(scope="module")
def mall_csv():
    return segmint.segment(dataset("mall_customers.csv"), features=FEATURES)


@pytest.mark.parametrize("fmt", ["xlsx", "parquet", "csv.gz", "semicolon", "dataframe"])
def test_formats_agree(mall_csv, tmp_path, fmt):
    df = pd.read_csv(dataset("mall_customers.csv"), dtype={"CustomerID": str})
    if fmt == "xlsx":
        data = tmp_path / "mall.xlsx"
        df.to_excel(data, index=False)
    elif fmt == "parquet":
        data = tmp_path / "mall.parquet"
        df.to_parquet(data)
    elif fmt == "csv.gz":
        data = tmp_path / "mall.csv.gz"
        df.to_csv(data, index=False, compression="gzip")
    elif fmt == "semicolon":
        data = tmp_path / "mall.csv"
        df.to_csv(data, index=False, sep=";")
    else:
        data = df
    r = segmint.segment(data, features=FEATURES)
    assert r.k == mall_csv.k
    np.testing.assert_array_equal(r.customers["segment"], mall_csv.customers["segment"])
    assert r.manifest.rows.read == 200


def test_customer_table_predict_and_missing_attribute(mall_csv, tmp_path):
    df = pd.read_csv(dataset("mall_customers.csv"), dtype={"CustomerID": str})
    scores = segmint.predict(mall_csv, df)
    assert (scores["segment"].to_numpy() == mall_csv.customers["segment"].to_numpy()).all()
    with pytest.raises(InputError, match="Spending Score"):
        segmint.predict(mall_csv, df.drop(columns=["Spending Score (1-100)"]))


def test_customer_rows_quarantined(tmp_path):
    p = tmp_path / "people.csv"
    rows = ["id,age,city"] + [f"c{i},{20 + i % 50},{'ab'[i % 2]}" for i in range(300)]
    rows += [",33,a", "c5,40,b", "c999,abc,a"]  # missing id, repeated id, bad number
    p.write_text("\n".join(rows) + "\n")
    r = segmint.segment(p)
    assert r.manifest.rows.quarantined == {
        "missing_customer_id": 1,
        "duplicate_customer_id": 1,
        "invalid_age": 1,
    }
    assert r.manifest.rows.read == 303 and r.manifest.customers == 300
    assert sorted(r.quarantine["_row"]) == [301, 302, 303]
    q = pd.read_parquet(segmint.save(r, tmp_path / "run") / "quarantine.parquet")
    assert sorted(q["_row"]) == [301, 302, 303]
    assert set(q["reason"]) == {"missing_customer_id", "duplicate_customer_id", "invalid_age"}


def test_kind_overrides_detection(tmp_path):
    # A customer table whose columns look like order lines (a date and an amount).
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(
        {
            "customer_id": [f"u{i}" for i in range(n)],
            "date": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "total": np.r_[rng.normal(100, 10, n // 2), rng.normal(900, 50, n // 2)],
        }
    )
    p = tmp_path / "accounts.csv"
    df.to_csv(p, index=False)
    auto = segmint.segment(p)
    assert auto.manifest.inputs[0].kind == "transactions"
    forced = segmint.segment(p, kind="customers")
    assert forced.manifest.inputs[0].kind == "customers"
    assert {"total", "date_days"} <= set(forced.features.numeric)
    assert forced.manifest.customers == n
    assert forced.manifest.features.dropped == {}
    assert auto.manifest.features.dropped["regularity"] == "all values missing"
    assert auto.manifest.features.dropped["frequency"] == "the same value for every customer"
