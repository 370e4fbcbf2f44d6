"""Turn text (or typed) columns into numbers, timestamps and ids, with evidence.

Each parser returns an Ibis expression that is NULL where a non-empty value cannot be
parsed, plus ``ColumnCheck`` counts so callers can quarantine rare bad values or stop with an
error that names the column, the first bad row and its value when a column is mostly wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from .exceptions import InputError
from .io import ROW

# Tried in order; ISO is handled by a plain cast. Day-first before month-first only matters
# when both parse every value, and then the ambiguity is reported in the manifest.
DATE_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%Y%m%d",
    "%Y%m%d%H%M%S",
)
ISO = "ISO 8601"


@dataclass
class ColumnCheck:
    column: str
    non_empty: int
    invalid: int
    first_bad_row: int | None
    first_bad_value: str | None

    @property
    def invalid_share(self) -> float:
        return self.invalid / self.non_empty if self.non_empty else 0.0


def _text(col: ir.Value) -> ir.StringValue:
    """Trimmed text, NULL when empty. DuckDB's one-argument ``trim`` (spaces) with ``nullif``
    costs 2.5x less than the CASE over a character-set trim that ``.strip()`` compiles to,
    and this runs on every id of every row."""
    return _nullif(_trim(col.cast("string")), "")


@ibis.udf.scalar.builtin(name="hash")
def hash64(value) -> dt.uint64:  # type: ignore[no-untyped-def, empty-body]
    """DuckDB's 64-bit hash, for any type. Ibis's ``Value.hash()`` compiles to
    ``CAST(CAST(HASH(x) AS BIT) AS BIGINT)``, a round trip through a bit string that made
    hashing the dominant cost of typing the lines."""


@ibis.udf.scalar.builtin(name="trim")
def _trim(s: str) -> str:  # type: ignore[empty-body]
    """DuckDB's trim (spaces)."""


@ibis.udf.scalar.builtin(name="nullif")
def _nullif(s: str, empty: str) -> str:  # type: ignore[empty-body]
    """SQL NULLIF."""


def text(col: ir.Value) -> ir.StringValue:
    """Trimmed text, NULL when empty."""
    return _text(col)


def is_empty(col: ir.Value) -> ir.BooleanValue:
    """NULL or blank."""
    return _text(col).isnull()


def number(col: ir.Value, decimal_comma: bool = False) -> ir.FloatingValue:
    if col.type().is_numeric():
        return col.cast("float64")
    s = _text(col)
    if decimal_comma:
        s = s.replace(".", "").replace(",", ".")
    return s.try_cast("float64")


_FLOAT_ID = r"^(\d+)\.0+$"


def identifier(col: ir.Value, float_formatted: bool = False) -> ir.StringValue:
    """Ids as trimmed strings; with ``float_formatted``, '17850.0' becomes '17850'.

    The regex costs more than the rest of a scan, so callers ask ``has_float_ids`` first.
    """
    if col.type().is_floating():
        return (col == col.round(0)).ifelse(col.cast("int64").cast("string"), col.cast("string"))
    s = _text(col)
    return s.re_replace(_FLOAT_ID, r"\1") if float_formatted else s


def has_float_ids(table: ir.Table, raw: str, sample: int = 100_000) -> bool:
    """True when ids look like a float export ('17850.0') in the first ``sample`` rows."""
    col = table[raw]
    if not col.type().is_string():
        return False
    head = table.select(v=_text(col)).limit(sample)
    return bool(head.v.re_search(_FLOAT_ID).any().execute())


def timestamp(col: ir.Value, fmt: str) -> ir.TimestampValue:
    t = col.type()
    if t.is_timestamp():
        return col.cast(dt.Timestamp())
    if t.is_date():
        return col.cast(dt.Timestamp())
    s = _text(col)
    if fmt == ISO:
        return s.try_cast(dt.Timestamp())
    # Ibis's as_timestamp raises on a bad value in DuckDB; try_strptime gives NULL instead.
    return _try_strptime(s, fmt)


@ibis.udf.scalar.builtin(name="try_strptime")
def _try_strptime(s: str, fmt: str) -> dt.timestamp:  # type: ignore[empty-body]
    """DuckDB's try_strptime."""


def check(table: ir.Table, raw: str, parsed: ir.Value) -> ColumnCheck:
    """Count non-empty values of ``raw`` and how many failed to parse, with the first failure."""
    col = table[raw]
    non_empty = col.notnull() if not col.type().is_string() else _text(col).notnull()
    bad = non_empty & parsed.isnull()
    agg = table.aggregate(
        non_empty=non_empty.cast("int64").sum(),
        invalid=bad.cast("int64").sum(),
        first_row=table[ROW].min(where=bad),
    ).execute()
    first_row = agg["first_row"].iloc[0]
    first_value = None
    if first_row is not None and first_row == first_row:
        first_row = int(first_row)
        first_value = (
            table.filter(table[ROW] == first_row)
            .select(v=col.cast("string"))
            .execute()["v"]
            .iloc[0]
        )
    else:
        first_row = None
    return ColumnCheck(
        raw,
        int(agg["non_empty"].iloc[0] or 0),
        int(agg["invalid"].iloc[0] or 0),
        first_row,
        first_value,
    )


def detect_date_format(table: ir.Table, raw: str, *, path: str, sample: int = 20_000) -> str:
    """Pick the date format that parses most of a sample; error when none fits."""
    col = table[raw]
    if col.type().is_timestamp() or col.type().is_date():
        return ISO
    if col.type().is_integer():
        return "%Y%m%d"
    text = _text(col)
    sub = table.select(ROW, v=text).filter(ibis._.v.notnull()).limit(sample)
    counts = {ISO: sub.v.try_cast(dt.Timestamp()).notnull().cast("int64").sum()}
    for fmt in DATE_FORMATS:
        counts[fmt] = _try_strptime(sub.v, fmt).notnull().cast("int64").sum()
    total = sub.count()
    res = sub.aggregate(total=total, **{f"f{i}": c for i, c in enumerate(counts.values())})
    row = res.execute().iloc[0]
    n = int(row["total"])
    if n == 0:
        raise InputError(
            "the date column is empty.", column=raw, expected="dates such as 2011-12-09", path=path
        )
    scores = {fmt: int(row[f"f{i}"]) for i, fmt in enumerate(counts)}
    best = max(scores, key=lambda f: scores[f])  # first maximum wins: ISO, then day-first
    if scores[best] < 0.5 * n:
        first = sub.limit(3).execute()
        examples = first["v"].tolist()
        raise InputError(
            "the date format is not recognised.",
            column=raw,
            row=int(first[ROW].iloc[0]),
            value=examples[0] if examples else None,
            expected=(
                "dates like 2011-12-09 13:45, 09/12/2011, 12/09/2011 or 20111209 "
                f"(first values: {', '.join(map(repr, examples))})"
            ),
            path=path,
        )
    return best


def detect_decimal_comma(table: ir.Table, raw: str) -> bool:
    """True when values look like '2,55' (decimal comma) rather than '2.55'."""
    col = table[raw]
    if not col.type().is_string():
        return False
    s = _text(col)
    sub = table.select(v=s).filter(ibis._.v.notnull()).limit(20_000)
    res = (
        sub.aggregate(
            dot=sub.v.try_cast("float64").notnull().cast("int64").sum(),
            comma=sub.v.replace(".", "")
            .replace(",", ".")
            .try_cast("float64")
            .notnull()
            .cast("int64")
            .sum(),
            has_comma=sub.v.contains(",").cast("int64").sum(),
        )
        .execute()
        .iloc[0]
    )
    return int(res["has_comma"] or 0) > 0 and int(res["comma"] or 0) > int(res["dot"] or 0)


def require_mostly_valid(chk: ColumnCheck, *, path: str, expected: str, max_share: float) -> None:
    """Stop the run when a column is mostly unparseable (likely mis-mapped)."""
    if chk.invalid and chk.invalid_share > max_share:
        raise InputError(
            f"{chk.invalid:,} of {chk.non_empty:,} values "
            f"({chk.invalid_share:.1%}) cannot be read; the limit for quarantining them as bad "
            f"rows is {max_share:.1%} (cleaning.max_invalid_share).",
            column=chk.column,
            row=chk.first_bad_row,
            value=chk.first_bad_value,
            expected=expected,
            path=path,
        )
