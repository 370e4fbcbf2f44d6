"""Validate a customer table (one row per customer of attributes) into typed columns.

Each column is typed from its content: numbers (a few unreadable values quarantine their
rows), dates (turned into "days before the reference date"), or categories. Columns that
cannot be features are excluded with a reason: constant, or free text / ids with too many
distinct values. Rows without an id, and repeated ids, are quarantined.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import pandas as pd

from . import parsing
from .config import Cleaning
from .exceptions import InputError
from .io import ROW, Source
from .schema import ColumnMap

MAX_LEVELS = 50


@dataclass
class CleanCustomers:
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    excluded: dict[str, str]
    source: Source
    read: int
    quarantined: dict[str, int]
    rejected: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return len(self.frame)

    def quarantine_frame(self) -> pd.DataFrame:
        src = self.source.table
        rows = ibis.memtable(self.rejected)
        joined = src.inner_join(rows, ROW)
        cols = {c: joined[c].cast("string") for c in self.source.columns}
        return joined.select(ROW, **cols, reason=joined.reason).order_by(ROW).execute()


def clean_customers(
    source: Source,
    cmap: ColumnMap,
    rules: Cleaning,
    reference: _dt.datetime | None = None,
) -> CleanCustomers:
    t = source.table
    id_col = cmap.get("customer_id")
    if id_col is None:
        raise InputError(
            "a customer table needs a customer id column; none could be matched.",
            expected=(
                "a column such as customer_id, CustomerID, Customer ID or ID "
                f"(file has: {', '.join(map(repr, source.columns))}); set it with "
                "--map customer_id=COLUMN"
            ),
            path=source.path,
        )
    n_rows = source.count()
    parsed: dict[str, ir.Value] = {
        "customer_id": parsing.identifier(t[id_col], parsing.has_float_ids(t, id_col))
    }
    numeric, categorical, dates = [], [], []
    excluded: dict[str, str] = {}
    notes: list[str] = []
    invalid_reasons: list[tuple[ir.BooleanValue, str]] = []
    for col in source.columns:
        if col == id_col:
            continue
        c = t[col]
        if c.type().is_numeric() or c.type().is_boolean():
            parsed[col] = c.cast("float64")
            numeric.append(col)
            continue
        if c.type().is_timestamp() or c.type().is_date():
            parsed[col] = c.cast("timestamp")
            dates.append(col)
            continue
        num = parsing.number(c)
        chk = parsing.check(t, col, num)
        if chk.non_empty and chk.invalid_share <= rules.max_invalid_share:
            parsed[col] = num
            numeric.append(col)
            if chk.invalid:
                invalid_reasons.append((num.isnull() & ~parsing.is_empty(c), f"invalid_{col}"))
            continue
        try:
            fmt = parsing.detect_date_format(t, col, path=source.path)
        except InputError:
            fmt = None
        if fmt is not None:
            ts = parsing.timestamp(c, fmt)
            dchk = parsing.check(t, col, ts)
            if dchk.invalid_share <= rules.max_invalid_share:
                parsed[col] = ts
                dates.append(col)
                notes.append(f"{col!r} read as dates ({fmt})")
                if dchk.invalid:
                    invalid_reasons.append((ts.isnull() & c.notnull(), f"invalid_{col}"))
                continue
        parsed[col] = parsing.text(c)
        categorical.append(col)

    conditions = [(parsed["customer_id"].isnull(), "missing_customer_id"), *invalid_reasons]
    w = ibis.window(group_by=parsed["customer_id"], order_by=t[ROW])
    conditions.append((ibis.row_number().over(w) > 0, "duplicate_customer_id"))
    reason = ibis.cases(*conditions, else_=ibis.null("string"))
    df = t.select(ROW, reason=reason, **parsed).order_by(ROW).execute()
    rejected = df.loc[df["reason"].notna(), [ROW, "reason"]].reset_index(drop=True)
    quarantined = rejected["reason"].value_counts().to_dict()
    frame = df.loc[df["reason"].isna()].drop(columns=["reason", ROW]).reset_index(drop=True)

    for col in dates:
        ts = pd.to_datetime(frame[col])
        ref = pd.Timestamp(reference) if reference else ts.max().normalize() + pd.Timedelta(days=1)
        name = f"{col}_days"
        frame[name] = (ref - ts).dt.total_seconds() / 86_400.0
        frame = frame.drop(columns=[col])
        numeric.append(name)
        notes.append(f"{col!r} became {name!r}: days before {ref.date()}")
    for col in list(numeric):
        if frame[col].nunique(dropna=True) <= 1:
            excluded[col] = "constant"
            numeric.remove(col)
    for col in list(categorical):
        levels = frame[col].nunique(dropna=True)
        if levels <= 1:
            excluded[col] = "constant"
        elif levels > MAX_LEVELS and levels > 0.05 * max(len(frame), 1):
            excluded[col] = f"text with {levels} distinct values (an id or free text)"
        else:
            continue
        categorical.remove(col)
    frame = frame.drop(columns=list(excluded))
    for col in categorical:
        frame[col] = frame[col].astype("string")
    return CleanCustomers(
        frame=frame,
        numeric=numeric,
        categorical=categorical,
        excluded=excluded,
        source=source,
        read=n_rows,
        quarantined={str(k): int(v) for k, v in quarantined.items()},
        rejected=rejected,
        notes=notes,
    )
