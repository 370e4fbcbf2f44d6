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

from segmint.config import Cleaning
from segmint.data import numeric as num
from segmint.data import parsing
from segmint.data.readers import ROW, Source
from segmint.data.schema import ColumnMap
from segmint.exceptions import AmbiguousDatesError, InputError

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
    *,
    date_format: str | None = None,
    decimal: str | None = None,
) -> CleanCustomers:
    t = source.table
    id_col = cmap.get("customer_id")
    if id_col is None:
        raise InputError(
            "a customer table needs a customer id column; none could be matched.",
            expected=(
                "a column such as customer_id, CustomerID, Customer ID or ID "
                f"(file has: {', '.join(map(repr, source.columns))}); name it in the column "
                "mapping (columns.customer_id)"
            ),
            path=source.path,
            code="input.missing_column",
            settings=("columns.customer_id",),
        )
    n_rows = source.count()
    typer = _Typer(source, rules, date_format=date_format, decimal=decimal)
    parsed: dict[str, ir.Value] = {"customer_id": parsing.identifier(t[id_col])}
    for col in source.columns:
        if col != id_col:
            parsed[col] = typer.type_column(col)
    numeric, categorical, dates = typer.numeric, typer.categorical, typer.dates
    excluded: dict[str, str] = {}
    notes = typer.notes
    invalid_reasons = typer.invalid_reasons

    conditions = [(parsed["customer_id"].isnull(), "missing_customer_id"), *invalid_reasons]
    w = ibis.window(group_by=parsed["customer_id"], order_by=t[ROW])
    conditions.append((ibis.row_number().over(w) > 0, "duplicate_customer_id"))
    reason = ibis.cases(*conditions, else_=ibis.null("string"))
    df = t.select(ROW, reason=reason, **parsed).order_by(ROW).execute()
    rejected = df.loc[df["reason"].notna(), [ROW, "reason"]].reset_index(drop=True)
    quarantined = rejected["reason"].value_counts().to_dict()
    _refuse_repeated_ids(df, id_col, rules.max_duplicate_id_share, source.path)
    frame = df.loc[df["reason"].isna()].drop(columns=["reason", ROW]).reset_index(drop=True)

    for col in dates:
        ts = pd.to_datetime(frame[col])
        ref = pd.Timestamp(reference) if reference else ts.max().normalize() + pd.Timedelta(days=1)
        if reference and ts.max() > ref:
            raise InputError(
                f"the observation end {ref.date()} is before the latest date in the column "
                f"({ts.max()}), which would give negative ages.",
                column=col,
                expected="observation_end on or after the latest date in the data",
                path=source.path,
                settings=("observation_end",),
            )
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


class _Typer:
    """Types each column of a customer table from its content: numbers (in the column's
    own decimal convention), dates, or text. Text columns are surveyed in one query per
    chunk of columns first, so a table with thousands of numeric columns costs a few
    queries rather than several per column."""

    def __init__(
        self, source: Source, rules: Cleaning, *, date_format: str | None, decimal: str | None
    ) -> None:
        self.source, self.rules = source, rules
        self.date_format, self.decimal = date_format, decimal
        self.numeric: list[str] = []
        self.categorical: list[str] = []
        self.dates: list[str] = []
        self.notes: list[str] = []
        self.invalid_reasons: list[tuple[ir.BooleanValue, str]] = []
        texts = [c for c in source.columns if source.table[c].type().is_string()]
        self.survey = _survey(source.table, texts)

    def type_column(self, col: str) -> ir.Value:
        c = self.source.table[col]
        if c.type().is_numeric() or c.type().is_boolean():
            self.numeric.append(col)
            if c.type().is_floating():  # NaN is how pandas writes a missing value
                bad = c.isinf() | (c.abs() >= num.MAX_ABS)
                self.invalid_reasons.append((bad.fill_null(False), f"invalid_{col}"))
            return num.number(c)
        if c.type().is_timestamp() or c.type().is_date():
            self.dates.append(col)
            return c.cast("timestamp")
        non_empty, numbers, commas = self.survey[col]
        number = self._number(col, non_empty, numbers, commas)
        if number is not None:
            return number
        date = self._date(col)
        if date is not None:
            return date
        self.categorical.append(col)
        return parsing.text(c)

    def _number(self, col: str, non_empty: int, numbers: int, commas: int) -> ir.Value | None:
        t, path, share = self.source.table, self.source.path, self.rules.max_invalid_share
        if not non_empty:
            return None
        if commas or self.decimal:
            try:
                conv = num.detect(t, col, path=path, decimal=self.decimal, has_commas=bool(commas))
            except InputError:
                if _looks_numeric(t, col) > 1 - share:
                    raise  # a number column written two ways: never guess
                return None
            parsed = num.number(t[col], conv)
            invalid = parsing.check(t, col, parsed).invalid
        else:
            parsed, invalid = num.number(t[col]), non_empty - numbers
        if invalid > share * non_empty:
            return None
        self.numeric.append(col)
        if invalid:
            self.invalid_reasons.append(
                (parsed.isnull() & ~parsing.is_empty(t[col]), f"invalid_{col}")
            )
        return parsed

    def _date(self, col: str) -> ir.Value | None:
        t, path = self.source.table, self.source.path
        try:
            fmt = parsing.detect_date_format(t, col, path=path, forced=self.date_format)
        except AmbiguousDatesError:
            raise
        except InputError:
            return None
        ts = parsing.timestamp(t[col], fmt)
        chk = parsing.check(t, col, ts)
        if chk.invalid_share > self.rules.max_invalid_share:
            return None
        self.dates.append(col)
        self.notes.append(f"{col!r} read as dates ({fmt})")
        if chk.invalid:
            self.invalid_reasons.append((ts.isnull() & ~parsing.is_empty(t[col]), f"invalid_{col}"))
        return ts


_CHUNK = 50


def _survey(t: ir.Table, columns: list[str]) -> dict[str, tuple[int, int, int]]:
    """Per text column: non-empty values, values that read as plain numbers, values with a
    comma. One query per chunk of columns."""
    out: dict[str, tuple[int, int, int]] = {}
    for i in range(0, len(columns), _CHUNK):
        chunk = columns[i : i + _CHUNK]
        aggs: dict[str, ir.Value] = {}
        for j, c in enumerate(chunk):
            v = parsing.text(t[c])
            aggs[f"e{j}"] = v.notnull().cast("int64").sum()
            # as numeric.number reads it (finite, plausible), in one comparison per value
            aggs[f"n{j}"] = (v.try_cast("float64").abs() < num.MAX_ABS).cast("int64").sum()
            aggs[f"c{j}"] = v.contains(",").cast("int64").sum()
        row = t.aggregate(**aggs).execute().iloc[0]
        for j, c in enumerate(chunk):
            out[c] = tuple(int(row[f"{k}{j}"] or 0) for k in "enc")  # type: ignore[assignment]
    return out


def _looks_numeric(t: ir.Table, col: str) -> float:
    """Share of non-empty values made only of digits, separators and a sign or exponent."""
    v = parsing.text(t[col])
    looks = v.re_search(r"^[+-]?[0-9.,]*[0-9]([eE][+-]?[0-9]+)?$")
    agg = t.aggregate(n=v.notnull().cast("int64").sum(), k=looks.cast("int64").sum()).execute()
    n = int(agg["n"].iloc[0] or 0)
    return int(agg["k"].iloc[0] or 0) / n if n else 0.0


def _refuse_repeated_ids(df: pd.DataFrame, id_col: str, max_share: float, path: str) -> None:
    """A customer table has one row per customer. When many rows repeat an id, the file is
    something else (most often order lines whose money or date column was not recognised),
    and quarantining the repeats would silently drop most of it."""
    dup = df["reason"] == "duplicate_customer_id"
    n_dup, n = int(dup.sum()), len(df)
    if not n_dup or n_dup <= max_share * n:
        return
    first = int(df.loc[dup, ROW].iloc[0])
    raise InputError(
        f"{n_dup:,} of {n:,} rows ({n_dup / n:.0%}) repeat a customer id already seen, so this "
        "is not a customer table (one row per customer); quarantining them would drop most "
        "of the file.",
        column=id_col,
        row=first,
        value=df.loc[dup, "customer_id"].iloc[0],
        expected=(
            "for order lines: kind = transactions, with the date and amount columns mapped "
            "(columns.ts, columns.amount); for a customer table: one row per customer "
            f"(the limit is cleaning.max_duplicate_id_share = {max_share:.0%})"
        ),
        path=path,
        settings=("kind", "columns.ts", "columns.amount"),
    )
