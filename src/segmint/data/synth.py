"""Realistic synthetic order lines from planted customer types, any size, deterministic by seed.

Each customer belongs to one planted type with its own purchase rate, basket, category
taste, seasonality, regularity, returns and churn. Customers are generated in chunks and
streamed to Parquet (or CSV), so 100M lines need only one chunk's memory. The planted type of
every customer is written beside the orders (``<stem>_types.parquet``) so tests and
benchmarks can measure how well segmentation recovers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from segmint.exceptions import InputError

START = np.datetime64("2024-01-01T00:00:00")
DAYS = 730  # two years of history, ending 2025-12-31
CATEGORIES = ("grocery", "fashion", "home", "electronics", "gifts", "beauty")
CHANNELS = ("web", "store", "app")
COUNTRIES = ("United Kingdom", "Germany", "France", "Netherlands", "Spain")
PRODUCTS_PER_CATEGORY = 200
PRODUCT_NAMES = np.char.add("P", np.arange(10_000, 10_000 + 6 * 200).astype(str))
# Typical unit price per category (GBP); each product's price is drawn around it.
CATEGORY_PRICE = (3.0, 25.0, 18.0, 60.0, 12.0, 9.0)


@dataclass(frozen=True)
class PlantedType:
    name: str
    share: float
    orders_per_year: float
    lines_per_order: float
    units_per_line: float
    taste: tuple[float, ...]  # Dirichlet concentration per category
    channel: tuple[float, float, float]
    return_rate: float
    regular: bool = False  # evenly spaced orders
    q4_weight: float = 0.0  # share of orders placed in Nov/Dec
    churn_after: tuple[int, int] | None = None  # active days before churning (min, max)
    new_within: int | None = None  # first order within this many days of the end


TYPES: tuple[PlantedType, ...] = (
    PlantedType("vip", 0.08, 12, 5, 3, (3, 3, 3, 3, 3, 3), (0.6, 0.2, 0.2), 0.03),
    PlantedType(
        "regular_grocer",
        0.22,
        8,
        3,
        2,
        (30, 1, 2, 0.5, 0.5, 2),
        (0.2, 0.7, 0.1),
        0.01,
        regular=True,
    ),
    PlantedType("fashion_bargain", 0.22, 2.5, 2, 1, (0.5, 30, 1, 0.5, 1, 3), (0.7, 0.1, 0.2), 0.25),
    PlantedType(
        "holiday_gifter",
        0.16,
        1.5,
        3,
        2,
        (0.5, 2, 1, 1, 30, 2),
        (0.5, 0.3, 0.2),
        0.05,
        q4_weight=0.85,
    ),
    PlantedType(
        "lapsed_home",
        0.18,
        5,
        2,
        1,
        (1, 1, 30, 2, 1, 1),
        (0.4, 0.5, 0.1),
        0.04,
        churn_after=(60, 300),
    ),
    PlantedType(
        "new_tech", 0.14, 6, 2, 1, (1, 1, 2, 30, 1, 1), (0.3, 0.1, 0.6), 0.06, new_within=90
    ),
)
# Expected ~19 order lines per customer: 1M customers ≈ 19M lines.


def generate_orders(
    customers: int,
    out: str | Path,
    *,
    seed: int = 0,
    chunk_customers: int = 50_000,
    types: tuple[PlantedType, ...] = TYPES,
) -> dict[str, Any]:
    """Write order lines for ``customers`` customers to ``out`` (.parquet or .csv).

    Returns a dict with ``lines`` (number of order lines), ``path`` and ``types_path``.
    Columns: customer_id, order_id, ts, product_id, category, channel, country, quantity,
    unit_price. Return lines have order ids starting with ``C`` and negative quantities.
    """
    if customers < 1:
        raise InputError(
            "the number of customers (customers) must be at least 1.",
            value=customers,
            settings=("customers",),
        )
    path = Path(out)
    fmt = path.suffix.lower()
    if fmt not in {".parquet", ".csv"}:
        raise InputError(
            "the output must end in .parquet or .csv.",
            value=str(path),
            expected=".parquet/.csv",
            settings=("out",),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    types_path = path.with_name(path.stem + "_types.parquet")
    root = np.random.default_rng(seed)
    prices = _product_prices(np.random.default_rng(root.integers(2**63)))
    chunk_seeds = root.integers(0, 2**63, size=(customers + chunk_customers - 1) // chunk_customers)
    writer: Any = None
    type_tables = []
    total = 0
    order_base = 1_000_000
    try:
        for i, start in enumerate(range(0, customers, chunk_customers)):
            n = min(chunk_customers, customers - start)
            rng = np.random.default_rng(chunk_seeds[i])
            table, truth, n_orders = _chunk(rng, start, n, order_base, prices, types)
            order_base += n_orders
            total += table.num_rows
            type_tables.append(truth)
            if fmt == ".parquet":
                if writer is None:
                    writer = pq.ParquetWriter(str(path), table.schema, compression="zstd")
                writer.write_table(table)
            else:
                if writer is None:
                    writer = pacsv.CSVWriter(str(path), table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    pq.write_table(pa.concat_tables(type_tables), str(types_path))
    return {"lines": total, "path": str(path), "types_path": str(types_path)}


def _product_prices(rng: np.random.Generator) -> np.ndarray:
    base = np.repeat(np.asarray(CATEGORY_PRICE), PRODUCTS_PER_CATEGORY)
    return np.round(base * rng.lognormal(0.0, 0.35, size=base.size), 2)


def _chunk(
    rng: np.random.Generator,
    first_customer: int,
    n: int,
    order_base: int,
    prices: np.ndarray,
    types: tuple[PlantedType, ...],
) -> tuple[pa.Table, pa.Table, int]:
    shares = np.asarray([t.share for t in types])
    kind = rng.choice(len(types), size=n, p=shares / shares.sum())
    cust_ids = np.char.add("C", (first_customer + np.arange(n) + 100_000).astype(str))

    def per(attr: str) -> np.ndarray:
        return np.asarray([getattr(t, attr) for t in types], dtype=float)[kind]

    # Active window per customer.
    start = rng.uniform(0, DAYS * 0.5, n)
    end = np.full(n, float(DAYS))
    for ti, t in enumerate(types):
        m = kind == ti
        if t.churn_after:
            end[m] = np.minimum(start[m] + rng.uniform(*t.churn_after, m.sum()), DAYS - 200)
            start[m] = np.minimum(start[m], end[m] - 30)
        if t.new_within:
            start[m] = DAYS - rng.uniform(5, t.new_within, m.sum())
    active = np.maximum(end - start, 1.0)
    rate = per("orders_per_year") / 365.0 * rng.lognormal(0, 0.25, n)
    n_orders = np.maximum(1, rng.poisson(rate * active))
    cust_of_order = np.repeat(np.arange(n), n_orders)
    k = kind[cust_of_order]
    # Order times: uniform, evenly spaced (regular types) or Q4-concentrated (seasonal types).
    u = rng.uniform(0, 1, cust_of_order.size)
    regular = np.asarray([t.regular for t in types])[k]
    rank = np.arange(cust_of_order.size) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
    even = (rank + 0.5 + rng.normal(0, 0.08, rank.size)) / np.repeat(n_orders, n_orders)
    u = np.where(regular, np.clip(even, 0, 1), u)
    day = start[cust_of_order] + u * active[cust_of_order]
    q4w = np.asarray([t.q4_weight for t in types])[k]
    seasonal = rng.uniform(0, 1, day.size) < q4w
    year = rng.integers(0, 2, day.size)
    q4_day = year * 365 + 305 + rng.uniform(0, 55, day.size)  # 1 Nov – 25 Dec
    day = np.where(seasonal, np.clip(q4_day, start[cust_of_order], DAYS - 0.01), day)
    order_ts = START + (day * 86_400).astype("timedelta64[s]")
    order_str = (order_base + np.arange(cust_of_order.size)).astype(str)
    channel_p = np.asarray([t.channel for t in types])[kind]
    cust_channel = (rng.uniform(0, 1, (n, 1)) > np.cumsum(channel_p, axis=1)).sum(axis=1)
    country = rng.choice(len(COUNTRIES), n, p=[0.8, 0.06, 0.06, 0.04, 0.04])

    # Lines.
    lines_per = 1 + rng.poisson(np.maximum(per("lines_per_order")[cust_of_order] - 1, 0))
    order_of_line = np.repeat(np.arange(cust_of_order.size), lines_per)
    cust_of_line = cust_of_order[order_of_line]
    alpha = np.asarray([t.taste for t in types])[kind]
    taste = rng.gamma(alpha)  # normalised gammas are Dirichlet draws, one row per customer
    taste /= taste.sum(axis=1, keepdims=True)
    cum = np.cumsum(taste, axis=1)
    cat = (rng.uniform(0, 1, (order_of_line.size, 1)) > cum[cust_of_line]).sum(axis=1)
    cat = np.minimum(cat, len(CATEGORIES) - 1)
    item = np.minimum(rng.zipf(1.3, order_of_line.size) - 1, PRODUCTS_PER_CATEGORY - 1)
    product = cat * PRODUCTS_PER_CATEGORY + item
    units = 1 + rng.poisson(np.maximum(per("units_per_line")[cust_of_line] - 1, 0))
    price = prices[product]

    # Returns: a share of lines come back 1–30 days later under a 'C' order id.
    ret = rng.uniform(0, 1, order_of_line.size) < per("return_rate")[cust_of_line]
    ret_ts = order_ts[order_of_line[ret]] + (rng.uniform(1, 30, ret.sum()) * 86_400).astype(
        "timedelta64[s]"
    )
    ret_ts = np.minimum(ret_ts, START + np.timedelta64(DAYS * 86_400 - 1, "s"))

    def frame(
        idx_order: np.ndarray, ts: np.ndarray, qty: np.ndarray, sel: np.ndarray, prefix: str
    ) -> dict[str, Any]:
        c = cust_of_line[sel]
        return {
            "customer_id": cust_ids[c],
            "order_id": np.char.add(prefix, order_str[idx_order])
            if prefix
            else order_str[idx_order],
            "ts": ts,
            "product_id": PRODUCT_NAMES[product[sel]],
            "category": np.asarray(CATEGORIES)[cat[sel]],
            "channel": np.asarray(CHANNELS)[cust_channel[c]],
            "country": np.asarray(COUNTRIES)[country[c]],
            "quantity": qty.astype(np.int64),
            "unit_price": price[sel],
        }

    all_sel = np.ones(order_of_line.size, dtype=bool)
    buy = frame(order_of_line, order_ts[order_of_line], units, all_sel, "")
    back = frame(order_of_line[ret], ret_ts, -units[ret], ret, "C")
    cols = {key: np.concatenate([buy[key], back[key]]) for key in buy}
    order = np.lexsort((cols["order_id"], cols["ts"]))
    arrays = {key: val[order] for key, val in cols.items()}
    arrays["ts"] = arrays["ts"].astype("datetime64[s]")
    table = pa.table(arrays)
    truth = pa.table(
        {"customer_id": cust_ids, "planted_type": np.asarray([t.name for t in types])[kind]}
    )
    return table, truth, int(cust_of_order.size)
