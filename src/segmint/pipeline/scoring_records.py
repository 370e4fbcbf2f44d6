"""JSON-like records (the REST API's) → the typed columns ``pipeline.scoring`` scores.

Every value is checked where it arrives: a refusal names the record's position in the
request, its customer id where it has one, the column, the value and what was expected.
Order lines become the typed columns ``predict`` would read from a file holding them;
customer records become feature columns and the matrix of their numeric features.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from segmint.exceptions import InputError
from segmint.pipeline.scoring_lines import Columns

__all__ = [
    "OPTIONAL_ORDER_COLUMNS",
    "ORDER_COLUMNS",
    "Records",
    "customer_id_of",
    "feature_values",
    "order_columns",
]

ORDER_COLUMNS = ("customer_id", "order_id", "ts", "quantity", "unit_price")
OPTIONAL_ORDER_COLUMNS = ("product_id", "category", "channel", "country")
Records = Sequence[Mapping[str, Any]]


def order_columns(records: Records) -> Columns:
    """Order-line records as the typed columns ``predict`` would read from a file with
    them: canonical names, ids as text, ``ts`` naive (an offset is converted to UTC),
    numbers float64 (``pd.DataFrame(order_columns(records))`` is that file)."""
    present = set()
    for i, r in enumerate(records):
        unknown = set(r) - set(ORDER_COLUMNS) - set(OPTIONAL_ORDER_COLUMNS)
        if unknown:
            raise InputError(
                f"order line {i} has unknown field(s) {', '.join(map(repr, sorted(unknown)))}.",
                expected=f"fields among {', '.join((*ORDER_COLUMNS, *OPTIONAL_ORDER_COLUMNS))}",
                code="input.unknown_column",
            )
        present.update(r)
    missing = [c for c in ORDER_COLUMNS if c not in present]
    if missing:
        raise InputError(
            f"the order lines lack the field(s) {', '.join(map(repr, missing))}.",
            expected=f"every order line with {', '.join(ORDER_COLUMNS)}",
            code="input.missing_column",
        )
    cols = [*ORDER_COLUMNS, *(c for c in OPTIONAL_ORDER_COLUMNS if c in present)]
    data: dict[str, Any] = {}
    for c in cols:
        values = [r.get(c) for r in records]
        if c == "ts":
            data[c] = _timestamps(values)
        elif c in ("quantity", "unit_price"):
            data[c] = np.array(
                [_number(v, i, c, "order line") for i, v in enumerate(values)], dtype=np.float64
            )
        else:
            data[c] = np.array(
                [_text(v, i, c, "order line") for i, v in enumerate(values)], dtype=object
            )
    return data


def _timestamps(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype="datetime64[us]")
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.datetime64("NaT")
            continue
        if not isinstance(v, str | _dt.datetime | _dt.date):
            raise InputError(
                f"order line {i}: 'ts' is not a date/time.",
                column="ts",
                value=v,
                expected="an ISO 8601 date/time such as 2024-03-01T12:30:00",
            )
        try:
            t = pd.Timestamp(v)
        except (ValueError, TypeError):
            raise InputError(
                f"order line {i}: 'ts' is not a date/time.",
                column="ts",
                value=v,
                expected="an ISO 8601 date/time such as 2024-03-01T12:30:00",
            ) from None
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        out[i] = np.datetime64(t.as_unit("us").to_datetime64(), "us")
    return out


def _number(v: Any, i: int, column: str, what: str) -> float:
    """A JSON number as float (None → NaN); anything else is refused."""
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise InputError(
            f"{what} {i}: {column!r} is not a number.",
            column=column,
            value=v,
            expected="a JSON number (or null when unknown)",
        )
    return float(v)


def _text(v: Any, i: int, column: str, what: str) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise InputError(
            f"{what} {i}: {column!r} is not text.",
            column=column,
            value=v,
            expected="a string (an integer id is read as its digits)",
        )
    return str(v)


def feature_values(
    records: Records, numeric: list[str], categorical: list[str]
) -> tuple[Columns, np.ndarray]:
    """The columns ``numeric`` and ``categorical`` of customer records (with
    ``customer_id``) and the float64 matrix of the numeric ones, every value checked: a
    missing feature, or a value that is not a finite number (text, for a categorical
    feature) is refused naming the customer, the column and what was expected. ``None`` is
    a missing value."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    num = np.empty((len(records), len(numeric)), dtype=np.float64)
    cats: list[list[Any]] = [[] for _ in categorical]
    for i, r in enumerate(records):
        cid = customer_id_of(r, i)
        if cid in seen:
            raise InputError(
                f"customer {i} repeats the customer_id of customer {seen[cid]} ({cid!r}).",
                column="customer_id",
                expected="each customer once per request",
            )
        seen[cid] = i
        ids.append(cid)
        row = num[i]
        for j, c in enumerate(numeric):
            v = r[c] if c in r else _feature(r, c, i, cid, numeric, categorical)
            if v is None:
                row[j] = math.nan
                continue
            x = _finite(v)
            if x is None:
                raise _bad_value(i, cid, c, v, "a finite number (or null when unknown)")
            row[j] = x
        for j, c in enumerate(categorical):
            v = r[c] if c in r else _feature(r, c, i, cid, numeric, categorical)
            if v is not None and not isinstance(v, str):
                raise _bad_value(i, cid, c, v, "text (or null when unknown)")
            cats[j].append(v)
    columns: Columns = {"customer_id": np.array(ids, dtype=object)}
    columns.update({c: num[:, j] for j, c in enumerate(numeric)})
    columns.update({c: np.array(cats[j], dtype=object) for j, c in enumerate(categorical)})
    return columns, num


def _finite(v: Any) -> float | None:
    """``v`` as a finite float, or None when it is not a finite number (booleans are not)."""
    exact = type(v) is float or type(v) is int
    if not exact and (isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number)):
        return None
    try:
        x = float(v)
    except (OverflowError, TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def customer_id_of(r: Mapping[str, Any], i: int) -> str:
    """Record ``i``'s ``customer_id`` as text; refused when missing or empty."""
    cid = r.get("customer_id")
    if cid is None:
        raise InputError(
            f"customer {i} has no customer_id.",
            column="customer_id",
            expected="a non-empty string (or an integer id)",
            code="input.missing_column",
        )
    if isinstance(cid, bool) or not isinstance(cid, str | int) or str(cid).strip() == "":
        raise InputError(
            f"customer {i} has no usable customer_id.",
            column="customer_id",
            value=cid,
            expected="a non-empty string (or an integer id)",
        )
    return str(cid)


def _feature(
    r: Mapping[str, Any], c: str, i: int, cid: str, numeric: list[str], categorical: list[str]
) -> Any:
    if c not in r:
        raise InputError(
            f"customer {i} ({cid!r}) has no value for the feature {c!r}.",
            column=c,
            expected=(
                "every feature the run's model uses, null where unknown: "
                f"{', '.join([*numeric, *categorical])}"
            ),
            code="input.missing_column",
        )
    return r[c]


def _bad_value(i: int, cid: str, column: str, value: Any, expected: str) -> InputError:
    return InputError(
        f"customer {i} ({cid!r}): the feature {column!r} is not usable.",
        column=column,
        value=value,
        expected=expected,
    )
