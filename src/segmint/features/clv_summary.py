"""Frequency / recency / T / monetary per customer for the CLV models, from order lines or
from the run's orders table (Ibis). The orders table has several times fewer rows than the
lines; an order counts at its time (its first purchase line's).

A *purchase period* is a day or a week (``unit_days`` 1 or 7) with at least one purchase;
as in the BG/NBD literature, several orders in one period count once. Per customer, over
purchases strictly before ``calibration_end``:

- ``x``: purchase periods after the first (repeat purchases);
- ``t_x``: periods from the first to the last purchase;
- ``T``: time from the first purchase period to ``calibration_end``, in units;
- ``m``: mean spend of the repeat periods (first period excluded; NaN when ``x = 0``);
- ``holdout_x`` (with ``holdout_end``): purchase periods in ``[calibration_end, holdout_end)``.
"""

from __future__ import annotations

import datetime as _dt

import ibis
import ibis.expr.types as ir
import pandas as pd

from ..io import to_pandas

DAY = 86_400


def _period(ts: ir.TimestampValue, unit_days: int) -> ir.IntegerValue:
    return (ts.epoch_seconds() / (DAY * unit_days)).floor().cast("int64")


def purchases(table: ir.Table) -> ir.Table:
    """``customer_id, ts, amount`` of the purchases in kept order lines or in an orders table
    (``behaviour.order_table``)."""
    if "order_ts" in table.columns:
        p = table.filter(table.n_lines > 0)
        return p.select("customer_id", ts=p.order_ts, amount=p.value)
    p = table.filter(~table.is_return)
    return p.select("customer_id", "ts", "amount")


def clv_summary(
    lines: ir.Table,
    calibration_end: _dt.datetime,
    *,
    unit_days: int = 7,
    holdout_end: _dt.datetime | None = None,
) -> pd.DataFrame:
    """One row per customer with a purchase before ``calibration_end`` (see module doc).
    ``lines``: kept order lines or an orders table."""
    buys = purchases(lines)
    cal_end = ibis.literal(pd.Timestamp(calibration_end).to_pydatetime())
    cal = buys.filter(buys.ts < cal_end)
    per = cal.group_by(["customer_id", _period(cal.ts, unit_days).name("period")]).aggregate(
        value=cal.amount.sum()
    )
    cust = per.group_by("customer_id").aggregate(
        first=per.period.min(),
        last=per.period.max(),
        n=per.period.count(),
        total=per.value.sum(),
        first_value=per.value.argmin(per.period),
    )
    df = to_pandas(cust).sort_values("customer_id", kind="stable").reset_index(drop=True)
    end_units = pd.Timestamp(calibration_end).timestamp() / (DAY * unit_days)
    out = pd.DataFrame({"customer_id": df["customer_id"]})
    out["x"] = (df["n"] - 1).astype("float64")
    out["t_x"] = (df["last"] - df["first"]).astype("float64")
    out["T"] = end_units - df["first"].astype("float64")
    repeat_spend = (df["total"] - df["first_value"]).astype("float64")
    out["m"] = (repeat_spend / out["x"]).where(out["x"] > 0)
    if holdout_end is not None:
        hold_end = ibis.literal(pd.Timestamp(holdout_end).to_pydatetime())
        h = buys.filter((buys.ts >= cal_end) & (buys.ts < hold_end))
        counts = h.group_by("customer_id").aggregate(holdout_x=_period(h.ts, unit_days).nunique())
        counts = to_pandas(counts)
        out = out.merge(counts, on="customer_id", how="left")
        out["holdout_x"] = out["holdout_x"].fillna(0).astype("float64")
    return out
