"""Customer features from a request's cleaned order lines, as ``features.build`` computes
them from order lines, without the engine (see ``scoring_lines`` for why and how this is
checked).

``order_table``, ``order_features`` and ``clv_summary`` follow ``features.behaviour`` and
``features.clv_summary`` column for column. Their aggregates add numbers as DuckDB does (one
by one, in the order the rows reach the aggregate: lines in row order, each customer's orders
in time order), so the features agree to the last bit and the scores exactly; only the order
in which DuckDB's hash table hands same-day orders to the CLV summary, and return-only
orders (which have no time) to ``returned_value``, is not reproduced, which can move the last
bit of those columns.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from segmint.config import Clv
from segmint.exceptions import InputError, ModelError
from segmint.features import behaviour
from segmint.features.clv import CLV_COLUMNS, customer_clv
from segmint.features.clv_summary import last_observed_day
from segmint.features.rfm import rfm_scores
from segmint.pipeline.scoring_lines import CleanLines, Columns

__all__ = ["check_end", "clv_summary", "line_features", "order_features", "order_table"]

DAY = 86_400.0
RFM_COLUMNS = ("r_score", "f_score", "m_score", "rfm_code", "rfm_segment")
_NAT = np.datetime64("NaT", "us")
_NEVER = np.iinfo(np.int64).max


class Groups:
    """Rows grouped by ``codes`` (0 .. n - 1), each group's rows in the order given.

    Aggregates are DuckDB's: ``sum`` adds the non-null values one by one in the order the
    rows arrive (no pairwise or compensated summation), ``mean`` is that sum over the count,
    ``std_pop`` Welford's running update; a group without a non-null value gives ``null``
    (NaN, SQL NULL). The loops run over positions within a group, vectorised across groups.
    """

    def __init__(self, codes: np.ndarray, n: int) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        self.n = n
        self.order = np.argsort(self.codes, kind="stable")
        self.lengths = np.bincount(self.codes, minlength=n)
        self.starts = np.zeros(n, dtype=np.int64)
        self.starts[1:] = np.cumsum(self.lengths)[:-1]
        self._steps_plan: list[tuple[np.ndarray, np.ndarray]] | None = None

    def _steps(self, values: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        v = np.asarray(values, dtype=np.float64)[self.order]
        for groups, rows in self._plan():
            x = v[rows]
            present = ~np.isnan(x)
            if present.all():
                yield groups, x
            else:
                yield groups[present], x[present]

    def _plan(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each position j: the groups with a j-th row, and where those rows are."""
        if self._steps_plan is None:
            plan = []
            for j in range(int(self.lengths.max(initial=0))):
                groups = np.flatnonzero(self.lengths > j)
                plan.append((groups, self.starts[groups] + j))
            self._steps_plan = plan
        return self._steps_plan

    def sum(self, values: np.ndarray, *, null: float = np.nan) -> np.ndarray:
        acc = np.zeros(self.n)
        count = np.zeros(self.n, dtype=np.int64)
        for g, x in self._steps(values):
            acc[g] += x
            count[g] += 1
        return np.where(count > 0, acc, null)

    def count(self, values: np.ndarray) -> np.ndarray:
        present = ~np.isnan(np.asarray(values, dtype=np.float64))
        return np.bincount(self.codes[present], minlength=self.n)

    def total(self, flags: np.ndarray) -> np.ndarray:
        """SUM of an integer (or boolean) column, NULL-free."""
        return np.bincount(self.codes, weights=flags, minlength=self.n).astype(np.int64)

    def mean(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum(values) / self.count(values)

    def std_pop(self, values: np.ndarray) -> np.ndarray:
        n = np.zeros(self.n)
        mean = np.zeros(self.n)
        m2 = np.zeros(self.n)
        for g, x in self._steps(values):
            n[g] += 1
            d = x - mean[g]
            mean[g] += d / n[g]
            m2[g] += d * (x - mean[g])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.sqrt(m2 / n), np.nan)

    def min(self, values: np.ndarray) -> np.ndarray:
        return self._extreme(values, np.fmin, np.inf)

    def max(self, values: np.ndarray) -> np.ndarray:
        return self._extreme(values, np.fmax, -np.inf)

    def _extreme(self, values: np.ndarray, op: Any, start: float) -> np.ndarray:
        acc = np.full(self.n, start)
        seen = np.zeros(self.n, dtype=bool)
        for g, x in self._steps(values):
            acc[g] = op(acc[g], x)
            seen[g] = True
        return np.where(seen, acc, np.nan)


def group_codes(*keys: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes of the distinct key tuples in order of first appearance, and the keys of each
    code (a dict: for a request's few thousand rows it beats pandas' factorize)."""
    index: dict[Any, int] = {}
    rows = zip(*(k.tolist() for k in keys), strict=True) if len(keys) > 1 else keys[0].tolist()
    codes = np.fromiter((index.setdefault(k, len(index)) for k in rows), np.int64, len(keys[0]))
    firsts = np.full(len(index), -1, dtype=np.int64)
    firsts[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # first row of each code
    return codes, [k[firsts] for k in keys]


def _epoch_seconds(ts: np.ndarray) -> np.ndarray:
    """DuckDB's ``epoch(ts)``: microseconds since 1970 / 1e6 as a double (NaT → NaN)."""
    us = ts.astype("datetime64[us]")
    return np.where(np.isnat(us), np.nan, us.astype(np.int64).astype(np.float64) / 1_000_000.0)


def order_table(lines: Columns, cats: list[str], cat_col: str | None) -> Columns:
    """``behaviour.order_table``: one row per (customer, order), lines summed in row order."""
    purchase = ~lines["is_return"]
    ret = lines["is_return"]
    amount = lines["amount"]
    codes, (cust, order) = group_codes(lines["customer_id"], lines["order_id"])
    n = len(cust)
    g = Groups(codes, n)
    micros = np.where(purchase, lines["ts"].astype(np.int64), _NEVER)
    first = np.full(n, _NEVER)
    np.minimum.at(first, codes, micros)
    out: Columns = {
        "customer_id": cust,
        "order_id": order,
        "order_ts": np.where(first == _NEVER, _NAT, first.astype("datetime64[us]")),
        "value": g.sum(np.where(purchase, amount, np.nan)),
        "returned": g.sum(np.where(ret, -amount, np.nan)),
        "items": g.sum(np.where(purchase, lines["quantity"], np.nan)),
        "n_lines": g.total(purchase),
        "n_return_lines": g.total(ret),
    }
    if cats:
        catv = lines[cat_col]
        for j, cat in enumerate(cats):
            out[f"_c{j}"] = g.sum(np.where(purchase & (catv == cat), amount, np.nan))
    return out


def order_features(
    orders: Columns, end: _dt.datetime, cats: list[str], cat_col: str | None
) -> Columns:
    """``behaviour.order_features``: one row per customer (in order of first appearance),
    each customer's orders taken in time order with return-only orders (no time) last, as
    DuckDB's window hands them to the aggregate."""
    end_sec = _epoch_seconds(np.array([pd.Timestamp(end).to_datetime64()]))[0]
    codes, (cust,) = group_codes(orders["customer_id"])
    n = len(cust)
    ts_key = np.where(np.isnat(orders["order_ts"]), _NEVER, orders["order_ts"].astype(np.int64))
    by = np.lexsort((ts_key, codes))  # stable: customer, then time, NULL times last
    o = {k: v[by] for k, v in orders.items()}
    codes = codes[by]
    sec = _epoch_seconds(o["order_ts"])
    gap = np.full(len(codes), np.nan)
    same = codes[1:] == codes[:-1]
    gap[1:] = np.where(same, (sec[1:] - sec[:-1]) / DAY, np.nan)
    bought = o["n_lines"] > 0
    when = pd.DatetimeIndex(o["order_ts"])
    weekend = when.day_of_week.to_numpy() >= 5
    quarter = when.quarter.to_numpy()
    value = o["value"]
    bvalue = np.where(bought, value, np.nan)
    g = Groups(codes, n)
    first, last = g.min(sec), g.max(sec)
    pv = g.sum(bvalue)
    returned_value = g.sum(o["returned"], null=0.0)  # COALESCE(SUM(returned), 0)
    gap_mean, gap_std, n_gaps = g.mean(gap), g.std_pop(gap), g.count(gap)
    out: Columns = {
        "customer_id": cust,
        "frequency": g.total(bought),
        "purchase_value": pv,
        "avg_order_value": g.mean(bvalue),
        "avg_basket_items": g.mean(np.where(bought, o["items"], np.nan)),
        "avg_basket_lines": g.mean(np.where(bought, o["n_lines"].astype(np.float64), np.nan)),
        "returned_value": returned_value,
        "n_return_lines": g.total(o["n_return_lines"]),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        out["monetary"] = np.where(np.isnan(pv), 0.0, pv) - returned_value
        out["recency_days"] = (end_sec - last) / DAY
        out["tenure_days"] = (end_sec - first) / DAY
        out["mean_interpurchase_days"] = np.where(n_gaps > 0, gap_mean, (end_sec - first) / DAY)
        cv = gap_std / np.where(gap_mean == 0.0, np.nan, gap_mean)
        out["regularity"] = np.where(n_gaps >= 2, 1.0 / (cv + 1.0), np.nan)
        out["return_rate"] = returned_value / pv
        for i in range(1, 5):
            out[f"share_q{i}"] = g.sum(np.where(quarter == i, bvalue, np.nan), null=0.0) / pv
        out["share_weekend"] = g.sum(np.where(weekend, bvalue, np.nan), null=0.0) / pv
        for j, cat in enumerate(cats):
            name = behaviour.category_share_name(cat_col or "category", cat)
            out[name] = g.sum(o[f"_c{j}"], null=0.0) / pv
    return out


def clv_summary(orders: Columns, end: _dt.datetime, unit_days: int) -> pd.DataFrame:
    """``features.clv_summary.clv_summary`` over an orders table (no hold-out), customers
    sorted by id; each customer's days are added in time order."""
    keep = (orders["n_lines"] > 0) & (orders["order_ts"] < pd.Timestamp(end).to_datetime64())
    ts = orders["order_ts"][keep]
    cust = orders["customer_id"][keep]
    day = np.floor(_epoch_seconds(ts) / 86_400).astype(np.int64)
    by = np.lexsort((ts.astype(np.int64), cust.astype(str)))
    codes, (dcust, days) = group_codes(cust[by], day[by])
    per_day = Groups(codes, len(days)).sum(orders["value"][keep][by])
    ccodes, (ids,) = group_codes(dcust)
    g = Groups(ccodes, len(ids))
    dayf = days.astype(np.float64)
    first, last = g.min(dayf), g.max(dayf)
    total = g.sum(per_day)
    first_value = per_day[g.order[g.starts]]  # days come in order: each one's first day
    x = (g.lengths - 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(x > 0, (total - first_value) / x, np.nan)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "x": x,
            "t_x": (last - first) / unit_days,
            "T": (last_observed_day(end) - first) / unit_days,
            "m": m,
        }
    )


def line_features(
    clean: CleanLines,
    *,
    end: _dt.datetime,
    categories: dict | None,
    clv: Clv | None,
    clv_params: dict | None,
    needed: list[str],
) -> tuple[Columns, dict[str, Any]]:
    """``features.build.build_features`` for order lines alone: one row per customer with a
    purchase, sorted by id. The RFM scores and CLV columns are computed only when ``needed``
    names one of them (they are no model input by default); the others always are."""
    lines = clean.lines
    cat_col, cats = None, []
    if categories is not None:
        cat_col, cats = categories.get("column"), list(categories.get("values") or [])
        if cat_col and cat_col not in clean.optional:
            cat_col, cats = None, []
    orders = order_table(lines, cats, cat_col)
    feats = order_features(orders, end, cats, cat_col)
    if "product_id" in clean.optional:
        feats["distinct_products"] = _distinct_products(lines, feats["customer_id"])
    only_returns = feats["frequency"] == 0
    keep = np.flatnonzero(~only_returns)
    keep = keep[np.argsort(feats["customer_id"][keep].astype(str), kind="stable")]
    frame = {k: v[keep] for k, v in feats.items()}
    info: dict[str, Any] = {
        "customers_with_purchases": len(keep),
        "customers_only_returns": int(only_returns.sum()),
    }
    if any(c in needed for c in RFM_COLUMNS):
        rfm = rfm_scores(
            pd.Series(frame["recency_days"]),
            pd.Series(frame["frequency"]),
            pd.Series(frame["monetary"]),
        )
        frame.update({c: rfm[c].to_numpy() for c in rfm.columns})
    if clv is not None and clv.enabled and any(c in needed for c in CLV_COLUMNS):
        try:
            values, _ = customer_clv(
                clv_summary(orders, end, clv.unit_days),
                unit_days=clv.unit_days,
                months=clv.horizon_months,
                annual_discount=clv.annual_discount,
                params=clv_params,
            )
        except ModelError as exc:
            info["clv"] = {"skipped": str(exc)}
        else:
            at = pd.Index(values["customer_id"]).get_indexer(frame["customer_id"])
            for c in CLV_COLUMNS:
                col = values[c].to_numpy(dtype=np.float64)
                frame[c] = np.where(at >= 0, col[at], np.nan)
    return frame, info


def _distinct_products(lines: Columns, customers: np.ndarray) -> np.ndarray:
    """Distinct non-null products among each customer's purchase lines (0 for none)."""
    bought = ~lines["is_return"]
    pairs = {
        (c, p)
        for c, p, b in zip(
            lines["customer_id"].tolist(),
            lines["product_id"].tolist(),
            bought.tolist(),
            strict=True,
        )
        if b and p is not None
    }
    counts: dict[Any, int] = {}
    for c, _ in pairs:
        counts[c] = counts.get(c, 0) + 1
    return np.array([counts.get(c, 0) for c in customers.tolist()], dtype=np.int64)


def check_end(clean: CleanLines, end: _dt.datetime, path: str) -> None:
    """``build_features``'s refusal of an observation end before the last line."""
    last = clean.last_ts
    if last is not None and pd.Timestamp(last) > pd.Timestamp(end):
        raise InputError(
            f"the observation end {end} is before the last order line ({last}): recency "
            "and tenure would be negative for the customers who bought after it.",
            column="ts",
            expected=(
                "observation_end on or after the last order (default: the day after it), "
                "or data filtered to the period you want to look at"
            ),
            path=path,
            settings=("observation_end",),
        )
