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


def default_observation_end(lines: ir.Table) -> _dt.datetime:
    """The day after the last order (midnight)."""
    last = lines.ts.max().execute()
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

    Customers with only returns have ``frequency`` NULL.
    """
    end = ibis.literal(observation_end).epoch_seconds()
    p = orders.filter(orders.n_lines > 0)
    sec = p.order_ts.epoch_seconds()
    w = ibis.window(group_by=p.customer_id, order_by=[p.order_ts, p.order_id])
    p = p.mutate(_sec=sec, gap=(sec - sec.lag().over(w)) / DAY)
    q = p.order_ts.quarter()
    weekend = p.order_ts.day_of_week.index() >= 5
    aggs: dict[str, ir.Value] = {
        "first": p._sec.min(),
        "last": p._sec.max(),
        "frequency": p.count(),
        "purchase_value": p.value.sum(),
        "avg_order_value": p.value.mean(),
        "avg_basket_items": p["items"].mean(),
        "avg_basket_lines": p.n_lines.mean(),
        "gap_mean": p.gap.mean(),
        "gap_std": p.gap.std(how="pop"),
        "n_gaps": p.gap.count(),
        "_we": p.value.sum(where=weekend),
    }
    for i in range(1, 5):
        aggs[f"_q{i}"] = p.value.sum(where=q == i)
    for j in range(len(categories or [])):
        aggs[f"_c{j}"] = p[f"_c{j}"].sum()
    agg = p.group_by("customer_id").aggregate(**aggs)
    pv = agg.purchase_value
    shares = {f"share_q{i}": agg[f"_q{i}"].fill_null(0) / pv for i in range(1, 5)}
    shares["share_weekend"] = agg._we.fill_null(0) / pv
    for j, cat in enumerate(categories or []):
        shares[category_share_name(category_col or "category", cat)] = (
            agg[f"_c{j}"].fill_null(0) / pv
        )
    bought = agg.select(
        "customer_id",
        "frequency",
        "purchase_value",
        "avg_order_value",
        "avg_basket_items",
        "avg_basket_lines",
        recency_days=(end - agg["last"]) / DAY,
        tenure_days=(end - agg["first"]) / DAY,
        # One-order customers: days since that order, a lower bound on their next gap.
        mean_interpurchase_days=(agg.n_gaps > 0).ifelse(agg.gap_mean, (end - agg["first"]) / DAY),
        # 1 / (1 + coefficient of variation of gaps): 1 = perfectly regular; needs 2+ gaps.
        regularity=(agg.n_gaps >= 2).ifelse(
            1.0 / (1.0 + agg.gap_std / (agg.gap_mean.nullif(0.0))), ibis.null("float64")
        ),
        **shares,
    )
    net = orders.group_by("customer_id").aggregate(
        monetary=orders.value.sum().fill_null(0) - orders.returned.sum().fill_null(0),
        returned_value=orders.returned.sum().fill_null(0),
        n_return_lines=orders.n_return_lines.sum(),
    )
    out = net.left_join(bought, "customer_id").drop("customer_id_right")
    return out.mutate(return_rate=out.returned_value / out.purchase_value)


def distinct_products(lines: ir.Table) -> ir.Table:
    """Distinct products bought per customer (two plain aggregations: several times faster
    than COUNT(DISTINCT) inside a wide aggregate)."""
    pairs = lines.filter(~lines.is_return).select("customer_id", "product_id").distinct()
    return pairs.group_by("customer_id").aggregate(distinct_products=pairs.count())


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
