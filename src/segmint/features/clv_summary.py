"""Frequency / recency / T / monetary per customer for the CLV models, from order lines or
from the run's orders table (Ibis). The orders table has several times fewer rows than the
lines; an order counts at its time (its first purchase line's).

Conventions (those of Fader, Hardie & Lee 2005 and of ``lifetimes``; they reproduce the
published CDNOW estimates, see ``tests/test_clv_golden.py``):

- **Purchase events are counted per day.** A *purchase day* is a calendar day on which the
  customer bought at least once; several orders on one day are one purchase event. A
  zero-value purchase is a purchase event like any other (BG/NBD counts transactions, not
  spend).
- **Time is the day index.** Every purchase on a day is placed at that day, and an
  observation window *ends on a day*: its last observed day ``D`` is part of it. ``t_x`` and
  ``T`` are differences of days, divided by ``unit_days`` (7 for weeks, the default, so they
  are fractional weeks; 1 for days). A customer whose first purchase is on day ``f``
  therefore has ``T = (D - f) / unit_days``, and a purchase on ``D`` itself has
  ``t_x = T``. (FHL's CDNOW calibration period is 1997-01-01..1997-09-30; a customer first
  buying on 1997-01-01 has T = 272 days = 38.86 weeks, exactly as in their data and as
  lifetimes' ``summary_data_from_transaction_data(..., observation_period_end="1997-09-30",
  freq="D", freq_multiplier=7)`` computes it: that end date is inclusive. Measuring to
  the midnight that ends ``D`` instead would make every T one day longer than theirs.)

The window is given here as the codebase gives every observation window, by its exclusive
end ``calibration_end`` (a run's ``observation_end``: purchases strictly before it, by
default midnight after the last order's day). Its last observed day ``D`` is the day of the
last instant before it: the day before ``calibration_end`` when that is a midnight (the usual
case), else the day ``calibration_end`` falls on. ``segmint clv --calibration-end`` names
``D`` itself (see ``segmint.pipeline.clv.validate_clv``).

Per customer with a purchase before ``calibration_end``:

- ``x``: purchase days after the first (repeat purchases): distinct purchase days - 1;
- ``t_x``: time from the first to the last purchase day, in units;
- ``T``: time from the first purchase day to ``D``, in units;
- ``m``: mean spend of the repeat purchase days (a day's spend is the sum of its orders;
  the first purchase day is excluded; NaN when ``x = 0``; 0 when every repeat purchase was
  worth nothing: such customers carry no information for the spend model, which uses
  ``m > 0`` only) -- lifetimes' ``monetary_value``;
- ``holdout_x`` (with ``holdout_end``): purchase days in ``[calibration_end, holdout_end)``.
"""

from __future__ import annotations

import datetime as _dt

import ibis
import ibis.expr.types as ir
import pandas as pd

from segmint.data.readers import to_pandas

DAY = 86_400


def _day(ts: ir.TimestampValue) -> ir.IntegerValue:
    """The day index of a timestamp (days since 1970-01-01)."""
    return (ts.epoch_seconds() / DAY).floor().cast("int64")


def last_observed_day(end: _dt.datetime | _dt.date) -> int:
    """Day index of the last day observed by a window that ends (exclusively) at ``end``:
    the day before ``end`` when it is a midnight, else the day ``end`` falls on."""
    return int(pd.Timestamp(end).ceil("D").timestamp()) // DAY - 1


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
    """One row per customer with a purchase before ``calibration_end`` (exclusive; see the
    module doc for how it fixes the last observed day and ``T``). ``lines``: kept order lines
    or an orders table. ``holdout_end`` (exclusive) adds ``holdout_x``."""
    buys = purchases(lines)
    cal_end = ibis.literal(pd.Timestamp(calibration_end).to_pydatetime())
    cal = buys.filter(buys.ts < cal_end)
    per = cal.group_by(["customer_id", _day(cal.ts).name("day")]).aggregate(value=cal.amount.sum())
    cust = per.group_by("customer_id").aggregate(
        first=per.day.min(),
        last=per.day.max(),
        n=per.day.count(),
        total=per.value.sum(),
        first_value=per.value.argmin(per.day),
    )
    df = to_pandas(cust).sort_values("customer_id", kind="stable").reset_index(drop=True)
    end_day = last_observed_day(calibration_end)
    out = pd.DataFrame({"customer_id": df["customer_id"]})
    out["x"] = (df["n"] - 1).astype("float64")
    out["t_x"] = (df["last"] - df["first"]).astype("float64") / unit_days
    out["T"] = (end_day - df["first"]).astype("float64") / unit_days
    repeat_spend = (df["total"] - df["first_value"]).astype("float64")
    out["m"] = (repeat_spend / out["x"]).where(out["x"] > 0)
    if holdout_end is not None:
        hold_end = ibis.literal(pd.Timestamp(holdout_end).to_pydatetime())
        h = buys.filter((buys.ts >= cal_end) & (buys.ts < hold_end))
        counts = h.group_by("customer_id").aggregate(holdout_x=_day(h.ts).nunique())
        counts = to_pandas(counts)
        out = out.merge(counts, on="customer_id", how="left")
        out["holdout_x"] = out["holdout_x"].fillna(0).astype("float64")
    return out
