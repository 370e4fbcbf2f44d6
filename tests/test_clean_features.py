"""Cleaning rules, row accounting and hand-checked feature values on a tiny order set."""

import pandas as pd
import pytest

from segmint.config import Settings
from segmint.data import readers
from segmint.data.ingest import ingest
from segmint.exceptions import InputError
from segmint.features import build_features


def _ingest(frame, **cleaning):
    s = Settings.build({"cleaning": {"max_invalid_share": 0.5, **cleaning}})
    return ingest([frame], s, readers.connect())


def test_every_row_accounted_with_one_reason(orders_frame):
    ing = _ingest(orders_frame)
    tx = ing.transactions
    assert tx.read == 11
    assert tx.quarantined == {
        "missing_customer_id": 1,
        "invalid_date": 1,
        "future_date": 1,
        "duplicate": 1,
    }
    # the zero-price line (row 8) is a purchase worth nothing, not a rejected row
    assert (tx.purchases, tx.returns) == (6, 1)
    assert tx.read == tx.kept + sum(tx.quarantined.values())
    q = tx.quarantine_table().execute()
    assert sorted(q["_row"]) == [7, 9, 10, 11]
    assert q.set_index("_row").loc[11, "InvoiceDate"] == "not a date"


def test_rules_are_configurable(orders_frame):
    ing = _ingest(orders_frame, drop_duplicates=False, returns="quarantine")
    tx = ing.transactions
    assert "duplicate" not in tx.quarantined
    assert tx.quarantined["return"] == 1
    assert tx.returns == 0


def test_zero_and_negative_prices(orders_frame):
    neg = orders_frame.copy()
    neg.loc[0, "UnitPrice"] = -5.0
    tx = _ingest(neg).transactions
    assert tx.quarantined["negative_price"] == 1
    tx = _ingest(orders_frame, zero_price="quarantine").transactions
    assert tx.quarantined["zero_price"] == 1
    assert (tx.purchases, tx.returns) == (5, 1)


def test_mostly_unparseable_column_stops_with_row_and_value(orders_frame):
    with pytest.raises(InputError) as exc:
        ingest([orders_frame], Settings(), readers.connect())  # default limit: 1% of values
    msg = str(exc.value)
    assert "'InvoiceDate'" in msg and "Row: 11" in msg and "'not a date'" in msg


def test_features_match_hand_computation(orders_frame):
    ing = _ingest(orders_frame)
    f = build_features(ing.transactions, None)
    assert f.observation_end == pd.Timestamp("2024-02-02").to_pydatetime()
    df = f.frame.set_index("customer_id")
    c1, c2 = df.loc["1"], df.loc["2"]
    assert c1.frequency == 3 and c2.frequency == 2  # c2's second order is free
    assert c1.monetary == pytest.approx(40.0)  # 20 + 5 + 20 - 5 returned
    assert c1.purchase_value == pytest.approx(45.0)
    assert c1.avg_order_value == pytest.approx(15.0)
    assert c1.recency_days == pytest.approx(1.5)
    assert c1.tenure_days == pytest.approx(31 + 14 / 24)
    gaps = [9 + 23 / 24, 20 + 3 / 24]
    mean = sum(gaps) / 2
    assert c1.mean_interpurchase_days == pytest.approx(mean)
    assert c1.regularity == pytest.approx(1 / (1 + (abs(gaps[1] - gaps[0]) / 2) / mean))
    assert c1.return_rate == pytest.approx(5 / 45)
    assert c1.distinct_products == 2
    assert c1.avg_basket_items == pytest.approx(8 / 3)
    assert c2.monetary == pytest.approx(30.0)
    assert c2.recency_days == pytest.approx(11 + 16 / 24)
    assert c2.mean_interpurchase_days == pytest.approx(1.0)
    assert c1.share_q1 == pytest.approx(1.0)


def test_amount_only_and_yyyymmdd_dates():
    df = pd.DataFrame(
        {
            "customer": ["a", "a", "b"],
            "date": [20240105, 20240210, 20240301],
            "amount": [10.0, -4.0, 7.5],
        }
    )
    ing = ingest([df], Settings(), readers.connect())
    tx = ing.transactions
    assert (tx.purchases, tx.returns) == (2, 1)
    f = build_features(tx, None).frame.set_index("customer_id")
    assert f.loc["a", "monetary"] == pytest.approx(6.0)
    assert f.loc["a", "frequency"] == 1


def test_decimal_comma_and_day_first_dates(tmp_path):
    p = tmp_path / "eu.csv"
    p.write_text(
        "Kunde;Beleg;Datum;Menge;Preis\n"
        "k1;1;13.01.2024;2;1,50\n"
        "k1;2;14.02.2024;1;2,25\n"
        "k2;3;01.03.2024;3;10,00\n",
        encoding="latin-1",
    )
    s = Settings.build(
        {
            "columns": {
                "customer_id": "Kunde",
                "order_id": "Beleg",
                "ts": "Datum",
                "quantity": "Menge",
                "unit_price": "Preis",
            }
        }
    )
    ing = ingest([str(p)], s, readers.connect())
    assert ing.inputs[0]["delimiter"] == ";"
    f = build_features(ing.transactions, None).frame.set_index("customer_id")
    assert f.loc["k1", "monetary"] == pytest.approx(5.25)
    assert f.loc["k2", "monetary"] == pytest.approx(30.0)
