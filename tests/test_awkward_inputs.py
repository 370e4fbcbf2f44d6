"""Awkward inputs that used to give wrong numbers with exit 0: each is now read correctly or
refused with a message naming the file, column, row and what was expected."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from segmint.config import Settings
from segmint.data import readers
from segmint.data.ingest import ingest
from segmint.data.parsing import AmbiguousDatesError
from segmint.exceptions import ConfigError, InputError
from segmint.features import build_features

from .conftest import dataset

HEADER = "CustomerID,InvoiceNo,InvoiceDate,Quantity,UnitPrice\n"


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _lines(n: int, price=lambda i: "2.50", date=lambda i: f"2024-03-{i % 28 + 1:02d}") -> str:
    return "".join(f'c{i % 50},{i},{date(i)},1,"{price(i)}"\n' for i in range(n))


def _ingest(data, **settings):
    return ingest([data], Settings.build(settings), readers.connect())


def _kept(ing) -> pd.DataFrame:
    return ing.transactions.lines.to_pandas()


# ---------------------------------------------------------------- numbers


def test_decimal_comma_column_with_some_dots_is_refused_naming_rows_of_each_kind(tmp_path):
    rows = "".join(
        f"k{i % 50};{i};2024-03-{i % 28 + 1:02d};1;{'2.55' if i % 10 == 3 else '2,55'}\n"
        for i in range(200)
    )
    p = _write(tmp_path, "eu.csv", "Kunde;Beleg;Datum;Menge;Preis\n" + rows)
    with pytest.raises(InputError) as exc:
        _ingest(str(p), columns={"customer_id": "Kunde", "order_id": "Beleg", "ts": "Datum",
                                 "quantity": "Menge", "unit_price": "Preis"})  # fmt: skip
    msg = str(exc.value)
    assert "eu.csv" in msg and "'Preis'" in msg
    assert "row 4: '2.55'" in msg and "row 1: '2,55'" in msg  # a row of each kind
    assert "decimal setting" in msg and "--decimal" not in msg
    assert exc.value.code == "input.invalid" and exc.value.settings == ("decimal",)


def test_us_thousands_separators_are_read_as_thousands(tmp_path):
    p = _write(tmp_path, "us.csv", HEADER + _lines(100, price=lambda i: "1,690.00" if i % 4 == 0
                                                    else "12.50"))  # fmt: skip
    lines = _kept(_ingest(str(p)))
    assert sorted(lines["unit_price"].unique()) == [12.5, 1690.0]
    assert lines["amount"].sum() == pytest.approx(25 * 1690 + 75 * 12.5)


def test_european_grouping_read_as_thousands(tmp_path):
    p = _write(tmp_path, "eu.csv", "Kunde;Beleg;Datum;Menge;Preis\n" + "".join(
        f"k{i % 50};{i};2024-03-{i % 28 + 1:02d};1;{'1.690,00' if i % 4 == 0 else '12,5'}\n"
        for i in range(100)))  # fmt: skip
    cols = {"customer_id": "Kunde", "order_id": "Beleg", "ts": "Datum", "quantity": "Menge",
            "unit_price": "Preis"}  # fmt: skip
    lines = _kept(_ingest(str(p), columns=cols))
    assert sorted(lines["unit_price"].unique()) == [12.5, 1690.0]


def test_commas_that_read_two_ways_are_refused_until_the_user_says(tmp_path):
    p = _write(tmp_path, "x.csv", HEADER + _lines(60, price=lambda i: "1,500"))
    with pytest.raises(InputError) as exc:
        _ingest(str(p))
    assert "'1,500'" in str(exc.value) and "decimal setting" in str(exc.value)
    assert exc.value.code == "input.ambiguous_numbers" and exc.value.settings == ("decimal",)
    assert set(_kept(_ingest(str(p), decimal="."))["unit_price"]) == {1500.0}
    assert set(_kept(_ingest(str(p), decimal=","))["unit_price"]) == {1.5}


def test_forced_decimal_comma_quarantines_dotted_values_instead_of_misreading(tmp_path):
    p = _write(tmp_path, "x.csv", HEADER + _lines(300, price=lambda i: "2.55" if i == 7
                                                  else "2,55"))  # fmt: skip
    ing = _ingest(str(p), decimal=",")
    assert ing.transactions.quarantined == {"invalid_unit_price": 1}
    assert set(_kept(ing)["unit_price"]) == {2.55}


@pytest.mark.parametrize("bad", ["NaN", "nan", "inf", "-inf", "Infinity", "1e400", "1e308"])
def test_non_finite_and_absurd_numbers_are_quarantined(tmp_path, bad):
    p = _write(tmp_path, "x.csv", HEADER + _lines(300, price=lambda i: bad if i == 5 else "2.5"))
    ing = _ingest(str(p))
    assert ing.transactions.quarantined == {"invalid_unit_price": 1}
    lines = _kept(ing)
    assert np.isfinite(lines["amount"]).all() and len(lines) == 299


def test_a_product_too_large_to_be_an_amount_is_quarantined():
    df = pd.DataFrame({"CustomerID": [f"c{i % 50}" for i in range(300)],
                       "InvoiceNo": range(300), "InvoiceDate": "2024-03-01",
                       "Quantity": [1e10 if i == 3 else 2 for i in range(300)],
                       "UnitPrice": [1e9 if i == 3 else 2.5 for i in range(300)]})  # fmt: skip
    ing = _ingest(df)
    assert ing.transactions.quarantined == {"implausible_amount": 1}


def test_typed_nan_and_inf_are_missing_and_invalid():
    price = [2.5] * 300
    price[1], price[2] = float("nan"), float("inf")
    df = pd.DataFrame({"CustomerID": [f"c{i % 50}" for i in range(300)],
                       "InvoiceNo": range(300), "InvoiceDate": "2024-03-01",
                       "Quantity": 1, "UnitPrice": price})  # fmt: skip
    q = _ingest(df, cleaning={"max_invalid_share": 0.5}).transactions.quarantined
    assert q == {"missing_unit_price": 1, "invalid_unit_price": 1}


# ---------------------------------------------------------------- dates


def test_ambiguous_dates_are_refused_and_date_format_decides(tmp_path):
    # month/day/year with every day <= 12: both readings fit every value
    p = _write(tmp_path, "us.csv", HEADER + _lines(
        120, date=lambda i: f"{i % 3 + 1:02d}/{i % 12 + 1:02d}/2024"))  # fmt: skip
    with pytest.raises(AmbiguousDatesError) as exc:
        _ingest(str(p))
    msg = str(exc.value)
    assert "'InvoiceDate'" in msg and "date_format" in msg and "%m/%d/%Y" in msg
    assert exc.value.code == "input.ambiguous_dates" and exc.value.settings == ("date_format",)
    lines = _kept(_ingest(str(p), date_format="%m/%d/%Y"))
    assert lines["ts"].dt.month.max() == 3  # months 1..3, days 1..12
    assert lines["ts"].dt.day.max() == 12


def test_the_whole_column_decides_the_date_order(tmp_path):
    # the first 25,000 dates fit both orders; a later one has day 25, so day-first is wrong
    n = 25_100
    p = _write(tmp_path, "late.csv", HEADER + _lines(
        n, date=lambda i: "03/25/2024" if i == n - 1 else f"{i % 12 + 1:02d}/05/2024"))  # fmt: skip
    lines = _kept(_ingest(str(p)))  # month-first: '01/05/2024' is 5 January
    assert set(lines["ts"].dt.day) == {5, 25}
    assert set(lines["ts"].dt.month) == set(range(1, 13))
    assert lines.loc[lines["ts"].dt.day == 25, "ts"].dt.month.tolist() == [3]


def test_placeholder_dates_are_quarantined_as_implausible(tmp_path):
    p = _write(tmp_path, "x.csv", HEADER + _lines(
        300, date=lambda i: "1900-01-01" if i % 100 == 0 else "2024-03-01"))  # fmt: skip
    ing = _ingest(str(p))
    assert ing.transactions.quarantined == {"implausible_date": 3}
    assert ing.transactions.span()[0].year == 2024
    assert _ingest(str(p), cleaning={"min_date": None}).transactions.quarantined == {}


def test_observation_end_before_the_data_is_refused(tmp_path):
    p = _write(tmp_path, "x.csv", HEADER + _lines(100))
    ing = _ingest(str(p))
    with pytest.raises(InputError, match="before the last order line"):
        build_features(ing.transactions, None, observation_end=pd.Timestamp("2024-03-10"))
    with pytest.raises(ConfigError, match="observation_end: must be an ISO date"):
        Settings.build({"observation_end": "yesterday"})


# ---------------------------------------------------------------- columns and kinds


def test_repeated_header_is_refused(tmp_path):
    p = _write(tmp_path, "x.csv", "CustomerID,InvoiceNo,InvoiceDate,Quantity,UnitPrice,UnitPrice\n"
               + "".join(f"c{i},{i},2024-03-01,1,2.5,2.5\n" for i in range(20)))  # fmt: skip
    with pytest.raises(InputError, match="column 5 is 'UnitPrice' and column 6 is 'UnitPrice'"):
        _ingest(str(p))
    xl = tmp_path / "x.xlsx"
    pd.DataFrame([[1, 2.5, 3.5]] * 3, columns=["CustomerID", "Price", "Price"]).to_excel(
        xl, index=False
    )
    with pytest.raises(InputError, match="repeats a column name"):
        _ingest(str(xl))
    frame = pd.DataFrame([[1, 2, 3]], columns=["CustomerID", "Price", "price"])
    with pytest.raises(InputError, match="repeats a column name"):
        _ingest(frame)


def test_purchase_log_with_a_value_column_is_order_lines(tmp_path):
    rows = "".join(f"{i % 30:05d},{20240101 + i % 28},{i % 3 + 1},{(i % 7) * 5.5:.2f}\n"
                   for i in range(200))  # fmt: skip
    p = _write(tmp_path, "log.csv", "customer_id,date,number_of_cds,dollar_value\n" + rows)
    ing = _ingest(str(p))
    entry = ing.inputs[0]
    assert entry["kind"] == "transactions"
    assert entry["columns"]["amount"] == "dollar_value"
    assert entry["rows"]["read"] == entry["rows"]["kept"] == 200


def test_purchase_log_without_an_amount_asks_for_it(tmp_path):
    rows = "".join(f"u{i % 30},2024-01-{i % 28 + 1:02d},{i % 3}\n" for i in range(200))
    p = _write(tmp_path, "log.csv", "customer_id,date,items_bought\n" + rows)
    with pytest.raises(InputError, match=r"amount \(or quantity and unit_price\)"):
        _ingest(str(p))


def test_customer_table_with_many_repeated_ids_stops_instead_of_dropping_most_rows(tmp_path):
    rows = "".join(f"u{i % 30},{i % 5},{i * 1.5}\n" for i in range(200))
    p = _write(tmp_path, "t.csv", "customer_id,visits,score\n" + rows)
    with pytest.raises(InputError) as exc:
        _ingest(str(p))
    msg = str(exc.value)
    assert "170 of 200 rows" in msg and "'customer_id'" in msg and "Row: 31" in msg


def test_unknown_mapped_column_is_refused(tmp_path):
    p = _write(tmp_path, "x.csv", HEADER + _lines(50))
    with pytest.raises(InputError, match="customer_id='NoSuchCol'"):
        _ingest(str(p), columns={"customer_id": "NoSuchCol"})


# ---------------------------------------------------------------- ids


def test_float_formatted_ids_are_normalised_in_every_row(tmp_path):
    n = 120_000  # beyond any sample of the first rows
    ids = [f"{12000 + i % 400}" for i in range(n)]
    ids[110_000:] = [f"{v}.0" for v in ids[110_000:]]
    df = pd.DataFrame(
        {
            "CustomerID": ids,
            "InvoiceNo": np.arange(n) // 3,
            "InvoiceDate": "2024-03-01 10:00",
            "Quantity": 1,
            "UnitPrice": 2.5,
        }
    )
    p = tmp_path / "ids.csv"
    df.to_csv(p, index=False)
    lines = _kept(_ingest(str(p)))
    assert lines["customer_id"].nunique() == 400
    assert not lines["customer_id"].str.contains(".", regex=False).any()


def test_parquet_float_ids_with_nan_are_missing_ids(tmp_path):
    raw = pd.read_csv(dataset("online_retail.csv.gz"), nrows=20_000)
    assert raw["CustomerID"].dtype == "float64" and raw["CustomerID"].isna().any()
    p = tmp_path / "retail.parquet"
    raw.to_parquet(p)
    ing = _ingest(str(p))
    assert ing.transactions.quarantined["missing_customer_id"] == int(
        raw["CustomerID"].isna().sum()
    )
    ids = _kept(ing)["customer_id"]
    assert set(ids) == {str(int(v)) for v in raw["CustomerID"].dropna()} & set(ids)
    assert not ids.str.endswith(".0").any()


# ---------------------------------------------------------------- nothing left, broken files


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("returns", "100 are returns"),
        ("cancelled", "100 are returns"),
        ("future", "future_date: 100"),
    ],
)
def test_no_purchase_left_after_cleaning_is_a_clear_refusal(tmp_path, case, reason):
    rows = {
        "returns": "".join(f"c{i},{i},2024-03-01,-2,3.5\n" for i in range(100)),
        "cancelled": "".join(f"c{i},C{i},2024-03-01,2,3.5\n" for i in range(100)),
        "future": "".join(f"c{i},{i},2099-03-01,2,3.5\n" for i in range(100)),
    }[case]
    p = _write(tmp_path, "x.csv", HEADER + rows)
    with pytest.raises(InputError) as exc:
        _ingest(str(p))
    assert "no purchases are left after cleaning" in str(exc.value) and reason in str(exc.value)


def test_truncated_gzip_is_refused(tmp_path):
    data = gzip.compress((HEADER + _lines(200_000)).encode())
    p = tmp_path / "cut.csv.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        _ingest(str(p))


def test_ten_thousand_columns_are_refused_before_reading(tmp_path):
    header = "customer_id," + ",".join(f"f{j}" for j in range(10_000))
    rows = "".join(f"u{i}," + ",".join(["1.5"] * 10_000) + "\n" for i in range(5))
    p = _write(tmp_path, "wide.csv", header + "\n" + rows)
    with pytest.raises(InputError, match="10,001 columns; segmint reads at most 1,000"):
        _ingest(str(p))
    wide = pd.DataFrame(np.ones((3, 1_200)), columns=[f"f{j}" for j in range(1_200)])
    with pytest.raises(InputError, match="max_columns"):
        _ingest(wide)
