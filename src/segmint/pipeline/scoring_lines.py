"""A request's order lines, cleaned as ``data.clean_lines`` cleans them, without the engine.

``predict`` reads order lines through DuckDB and Ibis (``data.clean_lines``,
``features.behaviour``, ``features.clv_summary``): ~200 ms for any input, nearly all of it
building and compiling the queries and opening the engine, far over a real-time budget. The
lines of one request are already typed (JSON numbers, ISO timestamps), so none of the
type detection applies, and what remains is the row rules and a few group-bys. This module
applies the rules (``clean_lines``); ``scoring_features`` computes the features. Both follow
those modules rule for rule and column for column (their docstrings are the specification);
``tests/test_scoring_api.py`` checks that scores, rejected rows and reasons equal
``predict_detailed``'s on every customer of real runs.

Lines are given as ``Columns``, a dict of equal-length numpy arrays with the canonical names:
``customer_id``, ``order_id`` (text or None), ``ts`` (``datetime64[us]``, NaT when missing),
``quantity``, ``unit_price`` (float64, NaN when missing), and optionally ``product_id``,
``category``, ``channel``, ``country`` (text or None).
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmint.config import Cleaning
from segmint.data.clean_lines import REASONS
from segmint.data.numeric import MAX_ABS

__all__ = ["CleanLines", "Columns", "clean_lines", "identifier", "trim"]

Columns = dict[str, np.ndarray]
_FLOAT_ID = re.compile(r"[0-9]+\.0+")


def _is_trimmed(ch: str) -> bool:
    return unicodedata.category(ch) == "Zs"


def trim(value: Any) -> str | None:
    """DuckDB's one-argument ``trim`` then ``nullif(.., '')`` (``parsing.text``): space
    separators (Unicode category Zs, not tabs or newlines) removed from both ends; empty →
    None."""
    if value is None:
        return None
    s = str(value)
    if s and (_is_trimmed(s[0]) or _is_trimmed(s[-1])):
        start, end = 0, len(s)
        while start < end and _is_trimmed(s[start]):
            start += 1
        while end > start and _is_trimmed(s[end - 1]):
            end -= 1
        s = s[start:end]
    return s or None


def identifier(value: Any) -> str | None:
    """``parsing.identifier`` for text: trimmed, and a float export of an integer id
    ('17850.0') read as '17850'."""
    s = trim(value)
    if s is not None and s.endswith("0") and "." in s and _FLOAT_ID.fullmatch(s):
        s = s.split(".", 1)[0]
    return s


@dataclass
class CleanLines:
    """Kept lines (canonical ``Columns`` plus ``amount`` and ``is_return``) and the
    accounting, as ``CleanTransactions`` has them. ``rejected_rows`` are 0-based positions
    in the input, ``rejected_reasons`` their reasons."""

    lines: Columns
    rejected_rows: np.ndarray
    rejected_reasons: np.ndarray
    read: int
    quarantined: dict[str, int]
    purchases: int
    returns: int
    optional: tuple[str, ...]
    first_ts: _dt.datetime | None = None
    last_ts: _dt.datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.purchases + self.returns

    @property
    def rows(self) -> dict[str, Any]:
        return {"read": self.read, "kept": self.kept, "quarantined": dict(self.quarantined)}


def _texts(values: np.ndarray, parse: Any) -> np.ndarray:
    return np.array([parse(v) for v in values.tolist()], dtype=object)


def clean_lines(raw: Columns, rules: Cleaning, *, now: _dt.datetime) -> CleanLines:
    """``data.clean_lines.clean_transactions`` for typed lines with an order id: the rules
    in the same priority order (each row gets at most one reason), exact duplicates among
    the rows no rule rejected quarantined after their first occurrence. ``now`` is the run
    time that ``drop_future_dates`` compares with (unless ``rules.max_date``)."""
    n = len(raw["customer_id"])
    cust = _texts(raw["customer_id"], identifier)
    order = _texts(raw["order_id"], identifier)
    tsv = raw["ts"].astype("datetime64[us]")
    ts_null = np.isnat(tsv)
    qty_raw = raw["quantity"].astype(np.float64)
    price_raw = raw["unit_price"].astype(np.float64)
    with np.errstate(invalid="ignore"):
        # numeric.number: NaN, inf and values of MAX_ABS or more are not numbers
        qty = np.where(np.abs(qty_raw) < MAX_ABS, qty_raw, np.nan)
        price = np.where(np.abs(price_raw) < MAX_ABS, price_raw, np.nan)
    optional = tuple(c for c in ("product_id", "category") if c in raw)

    reason = np.full(n, None, dtype=object)
    open_ = np.ones(n, dtype=bool)  # no rule has fired yet

    def rule(mask: np.ndarray, name: str) -> None:
        sel = open_ & mask
        reason[sel] = name
        open_[sel] = False

    def before(limit: Any) -> np.ndarray:
        return ~ts_null & (tsv < np.datetime64(pd.Timestamp(limit), "us"))

    with np.errstate(invalid="ignore"):
        rule(cust == None, "missing_customer_id")  # noqa: E711 (elementwise)
        rule(order == None, "missing_order_id")  # noqa: E711
        rule(ts_null, "missing_date")
        if rules.min_date:
            rule(before(rules.min_date), "implausible_date")
        for name, given, typed in (("quantity", qty_raw, qty), ("unit_price", price_raw, price)):
            rule(np.isnan(given), f"missing_{name}")
            rule(np.isnan(typed), f"invalid_{name}")
        if rules.drop_future_dates:
            limit = np.datetime64(pd.Timestamp(rules.max_date or now), "us")
            rule(~ts_null & (tsv > limit), "future_date")
        if rules.drop_negative_price:
            rule(price < 0, "negative_price")
        if rules.zero_price == "quarantine":
            rule(price == 0, "zero_price")
        rule(qty == 0, "zero_quantity")
        rule(np.abs(qty * price) >= MAX_ABS, "implausible_amount")
        is_return = qty < 0
        if rules.cancellation_prefix:
            prefix = rules.cancellation_prefix
            is_return |= np.array([o is not None and o.startswith(prefix) for o in order], bool)
        if rules.returns == "quarantine":
            rule(is_return, "return")
    dedupe = rules.drop_duplicates if rules.drop_duplicates is not None else True
    if dedupe:
        rule(_repeats(raw, open_), "duplicate")
    ok = open_

    counts: dict[str, int] = {}
    for r in reason[~ok].tolist():
        counts[r] = counts.get(r, 0) + 1
    quarantined = {r: counts[r] for r in REASONS if r in counts}
    n_returns = int((ok & is_return).sum())
    abs_qty = np.abs(qty[ok])
    ret = is_return[ok]
    value = abs_qty * price[ok]
    lines: Columns = {
        "customer_id": cust[ok],
        "order_id": order[ok],
        "ts": tsv[ok],
        **{c: _texts(raw[c][ok], identifier if c == "product_id" else trim) for c in optional},
        "quantity": np.where(ret, -abs_qty, abs_qty),
        "unit_price": price[ok],
        "amount": np.where(ret, -value, value),
        "is_return": ret,
    }
    kept_ts = tsv[ok]
    rejected = np.flatnonzero(~ok)
    return CleanLines(
        lines=lines,
        rejected_rows=rejected,
        rejected_reasons=reason[rejected].astype(str),
        read=n,
        quarantined=quarantined,
        purchases=int(ok.sum()) - n_returns,
        returns=n_returns,
        optional=optional,
        first_ts=_when(kept_ts.min()) if len(kept_ts) else None,
        last_ts=_when(kept_ts.max()) if len(kept_ts) else None,
    )


def _repeats(raw: Columns, candidates: np.ndarray) -> np.ndarray:
    """Rows among ``candidates`` equal in every given column to an earlier candidate row
    (``_duplicate_rows``: all raw values equal, the first row of each group kept)."""
    out = np.zeros(len(candidates), dtype=bool)
    rows = np.flatnonzero(candidates)
    if len(rows) < 2:
        return out
    cols = [raw[c][rows] for c in raw]
    cols = [c.astype(np.int64) if c.dtype.kind == "M" else c for c in cols]
    seen: set[tuple[Any, ...]] = set()
    for i, key in zip(rows.tolist(), zip(*(c.tolist() for c in cols), strict=True), strict=True):
        if key in seen:
            out[i] = True
        else:
            seen.add(key)
    return out


def _when(value: Any) -> _dt.datetime | None:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()
