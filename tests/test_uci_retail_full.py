"""The full UCI Online Retail file: exact row accounting and totals checked independently."""

import duckdb
import pandas as pd
import pytest

import segmint

from .conftest import dataset


@pytest.fixture(scope="module")
def retail(tmp_path_factory):
    path = dataset("online_retail.csv.gz")
    result = segmint.segment(path)
    out = segmint.save(result, tmp_path_factory.mktemp("retail") / "run")
    return path, result, out


def test_every_row_accounted(retail):
    _, r, out = retail
    rows = r.manifest.rows.model_dump()
    assert rows["read"] == 541_909
    assert rows["read"] == rows["kept"] + sum(rows["quarantined"].values())
    assert rows["quarantined"]["missing_customer_id"] == 135_080
    q = pd.read_parquet(out / "quarantine.parquet")
    assert len(q) == sum(rows["quarantined"].values())
    assert q["reason"].value_counts().to_dict() == rows["quarantined"]
    assert q["_row"].is_unique
    # the API result gives the same rows as the file
    pd.testing.assert_frame_equal(r.quarantine, q)


def _independent(path):
    """Plain DuckDB SQL over the raw file, written without segmint's code."""
    con = duckdb.connect()
    con.execute(
        f"""
        CREATE TABLE kept AS
        SELECT DISTINCT InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
               CustomerID, Country
        FROM read_csv('{path}', header = true, all_varchar = true)
        WHERE CustomerID IS NOT NULL AND CAST(UnitPrice AS DOUBLE) >= 0
        """
    )
    buyers = {
        str(c)
        for (c,) in con.execute(
            "SELECT DISTINCT CustomerID FROM kept "
            "WHERE NOT starts_with(InvoiceNo, 'C') AND CAST(Quantity AS DOUBLE) > 0"
        ).fetchall()
    }
    n_kept = con.execute("SELECT count(*) FROM kept").fetchone()[0]
    total = con.execute(
        "SELECT sum(CAST(Quantity AS DOUBLE) * CAST(UnitPrice AS DOUBLE)) FROM kept "
        "WHERE CustomerID IN (SELECT DISTINCT CustomerID FROM kept "
        "WHERE NOT starts_with(InvoiceNo, 'C') AND CAST(Quantity AS DOUBLE) > 0)"
    ).fetchone()[0]
    return buyers, n_kept, total


def test_buyers_segmented_and_money_matches_independent_sum(retail):
    path, r, _ = retail
    buyers, n_kept, total = _independent(path)
    assert r.manifest.rows.kept == n_kept
    segmented = set(r.customers["customer_id"])
    assert segmented == buyers
    assert len(segmented) == 4339  # 4,338 paying buyers + 1 whose only purchase was free
    assert r.customers["monetary"].sum() == pytest.approx(total, rel=1e-9)
    assert r.customers["segment"].between(0, r.k - 1).all()
    assert 3 <= r.k <= 10
