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


def order_table(lines: ir.Table) -> ir.Table:
    """One row per purchase order: customer, order time, value, items, lines."""
    p = lines.filter(~lines.is_return)
    return p.group_by(["customer_id", "order_id"]).aggregate(
        order_ts=p.ts.min(), value=p.amount.sum(), items=p.quantity.sum(), n_lines=p.count()
    )


def order_features(orders: ir.Table, observation_end: _dt.datetime) -> ir.Table:
    """Recency, frequency, spend, tenure, inter-purchase time and its regularity."""
    end = ibis.literal(observation_end).epoch_seconds()
    sec = orders.order_ts.epoch_seconds()
    w = ibis.window(group_by=orders.customer_id, order_by=[orders.order_ts, orders.order_id])
    gaps = orders.mutate(gap=(sec - sec.lag().over(w)) / DAY)
    agg = gaps.group_by("customer_id").aggregate(
        first=gaps.order_ts.epoch_seconds().min(),
        last=gaps.order_ts.epoch_seconds().max(),
        frequency=gaps.count(),
        purchase_value=gaps.value.sum(),
        avg_order_value=gaps.value.mean(),
        avg_basket_items=gaps.items.mean(),
        avg_basket_lines=gaps.n_lines.mean(),
        gap_mean=gaps.gap.mean(),
        gap_std=gaps.gap.std(how="pop"),
        n_gaps=gaps.gap.count(),
    )
    return agg.select(
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
    )


def line_features(
    lines: ir.Table, categories: list[str] | None, category_col: str | None
) -> ir.Table:
    """Net spend, returns, distinct products, spend shares by quarter, weekend and category."""
    purchase = ~lines.is_return
    pv = lines.amount.sum(where=purchase)
    q = lines.ts.quarter()
    weekend = lines.ts.day_of_week.index() >= 5
    aggs: dict[str, ir.Value] = {
        "monetary": lines.amount.sum(),
        "returned_value": (-lines.amount).sum(where=lines.is_return),
        "n_return_lines": lines.is_return.cast("int64").sum(),
        "_pv": pv,
    }
    for i in range(1, 5):
        aggs[f"_q{i}"] = lines.amount.sum(where=purchase & (q == i))
    aggs["_we"] = lines.amount.sum(where=purchase & weekend)
    for j, cat in enumerate(categories or []):
        aggs[f"_c{j}"] = lines.amount.sum(where=purchase & (lines[category_col] == cat))
    agg = lines.group_by("customer_id").aggregate(**aggs)
    share = {f"share_q{i}": (agg[f"_q{i}"].fill_null(0) / agg._pv) for i in range(1, 5)}
    share["share_weekend"] = agg._we.fill_null(0) / agg._pv
    for j, cat in enumerate(categories or []):
        share[category_share_name(category_col or "category", cat)] = (
            agg[f"_c{j}"].fill_null(0) / agg._pv
        )
    if "product_id" in lines.columns:
        # Two plain aggregations beat COUNT(DISTINCT) inside the wide aggregate several-fold.
        pairs = lines.filter(purchase).select("customer_id", "product_id").distinct()
        distinct = pairs.group_by("customer_id").aggregate(distinct_products=pairs.count())
        agg = agg.left_join(distinct, "customer_id").drop("customer_id_right")
    keep = [c for c in agg.columns if not c.startswith("_")]
    out = agg.select(
        *keep,
        return_rate=agg.returned_value.fill_null(0) / agg._pv,
        **share,
    )
    return out.mutate(returned_value=out.returned_value.fill_null(0.0))


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
