"""Behaviour features from kept order lines, written once in Ibis (DuckDB here, Spark later).

Pure functions: lines (canonical columns) + ``observation_end`` in, one row per customer out.
Time is measured in days. Purchases are non-return lines; ``monetary`` is net of returns.
"""

from __future__ import annotations

import datetime as _dt
import re

import ibis
import ibis.expr.types as ir
import pandas as pd

DAY = 86_400.0


def default_observation_end(last: _dt.datetime | None) -> _dt.datetime:
    """The day after ``last``, the time of the last order (midnight)."""
    if last is None or pd.isna(last):
        return _dt.datetime.now()
    return (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)).to_pydatetime()


def order_table(
    lines: ir.Table, categories: list[str] | None = None, category_col: str | None = None
) -> ir.Table:
    """One row per (customer, order) over all kept lines: the only pass over the lines.

    Carries what every customer feature needs (purchase and returned value, items, line
    counts, spend in each top category, the order's time), so customer-level aggregation
    runs over orders, several times fewer than lines. Return-only orders (cancellations)
    have ``n_lines == 0`` and a NULL ``order_ts``.
    """
    purchase = ~lines.is_return
    aggs: dict[str, ir.Value] = {
        "order_ts": lines.ts.min(where=purchase),
        "value": lines.amount.sum(where=purchase),
        "returned": (-lines.amount).sum(where=lines.is_return),
        "items": lines.quantity.sum(where=purchase),
        "n_lines": purchase.cast("int64").sum(),
        "n_return_lines": lines.is_return.cast("int64").sum(),
    }
    for j, cat in enumerate(categories or []):
        aggs[f"_c{j}"] = lines.amount.sum(where=purchase & (lines[category_col] == cat))
    return lines.group_by(["customer_id", "order_id"]).aggregate(**aggs)


def order_features(
    orders: ir.Table,
    observation_end: _dt.datetime,
    categories: list[str] | None = None,
    category_col: str | None = None,
) -> ir.Table:
    """Per customer: recency, frequency, spend, tenure, inter-purchase time and regularity,
    returns, and spend shares by quarter, weekend and top category (by the order's time).

    Customers with only returns have ``frequency`` 0.
    """
    end = ibis.literal(observation_end).epoch_seconds()
    o = orders
    bought = o.n_lines > 0
    sec = o.order_ts.epoch_seconds()
    # Return-only orders have a NULL time and sort last, so the lag between consecutive
    # purchase orders is unaffected and one aggregate serves purchases and returns alike.
    # Orders at the same time are gaps of 0 in whichever order they come, so no tie-break.
    w = ibis.window(group_by=o.customer_id, order_by=o.order_ts.asc(nulls_first=False))
    o = o.mutate(_sec=sec, gap=(sec - sec.lag().over(w)) / DAY)
    q = o.order_ts.quarter()
    weekend = o.order_ts.day_of_week.index() >= 5
    aggs: dict[str, ir.Value] = {
        "first": o._sec.min(),
        "last": o._sec.max(),
        "frequency": bought.cast("int64").sum(),
        "purchase_value": o.value.sum(where=bought),
        "avg_order_value": o.value.mean(where=bought),
        "avg_basket_items": o["items"].mean(where=bought),
        "avg_basket_lines": o.n_lines.mean(where=bought),
        "gap_mean": o.gap.mean(),
        "gap_std": o.gap.std(how="pop"),
        "n_gaps": o.gap.count(),
        "returned_value": o.returned.sum().fill_null(0),
        "n_return_lines": o.n_return_lines.sum(),
        "_we": o.value.sum(where=bought & weekend),
    }
    for i in range(1, 5):
        aggs[f"_q{i}"] = o.value.sum(where=bought & (q == i))
    for j in range(len(categories or [])):
        aggs[f"_c{j}"] = o[f"_c{j}"].sum()
    agg = o.group_by("customer_id").aggregate(**aggs)
    pv = agg.purchase_value
    shares = {f"share_q{i}": agg[f"_q{i}"].fill_null(0) / pv for i in range(1, 5)}
    shares["share_weekend"] = agg._we.fill_null(0) / pv
    for j, cat in enumerate(categories or []):
        shares[category_share_name(category_col or "category", cat)] = (
            agg[f"_c{j}"].fill_null(0) / pv
        )
    return agg.select(
        "customer_id",
        "frequency",
        "purchase_value",
        "avg_order_value",
        "avg_basket_items",
        "avg_basket_lines",
        "returned_value",
        "n_return_lines",
        monetary=pv.fill_null(0) - agg.returned_value,
        recency_days=(end - agg["last"]) / DAY,
        tenure_days=(end - agg["first"]) / DAY,
        # One-order customers: days since that order, a lower bound on their next gap.
        mean_interpurchase_days=(agg.n_gaps > 0).ifelse(agg.gap_mean, (end - agg["first"]) / DAY),
        # 1 / (1 + coefficient of variation of gaps): 1 = perfectly regular; needs 2+ gaps.
        regularity=(agg.n_gaps >= 2).ifelse(
            1.0 / (1.0 + agg.gap_std / (agg.gap_mean.nullif(0.0))), ibis.null("float64")
        ),
        return_rate=agg.returned_value / pv,
        **shares,
    )


def distinct_products(lines: ir.Table) -> ir.Table:
    """Distinct products bought per customer: a COUNT(DISTINCT) in an aggregate of its own
    (1.6 s at 20M lines; 2.2 s as DISTINCT pairs then a count, and several times slower
    inside the wide feature aggregate)."""
    p = lines.filter(~lines.is_return)
    return p.group_by("customer_id").aggregate(distinct_products=p.product_id.nunique())


def top_categories(lines: ir.Table, column: str, n: int) -> list[str]:
    """The ``n`` categories with the highest purchase spend across the base."""
    if n <= 0:
        return []
    p = lines.filter(~lines.is_return & lines[column].notnull())
    top = (
        p.group_by(column)
        .aggregate(spend=p.amount.sum())
        .order_by([ibis.desc("spend"), column])
        .limit(n)
        .execute()
    )
    return [str(v) for v in top[column]]


def category_share_name(kind: str, value: str) -> str:
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", str(value)).strip("_").lower()[:30] or "blank"
    prefix = "cat" if kind == "category" else "prod"
    return f"share_{prefix}_{slug}"
