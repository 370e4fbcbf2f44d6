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

from segmint.data.readers import ROW
from segmint.exceptions import AmbiguousDatesError, InputError

# Tried together; ISO is handled by a plain cast. When day-first and month-first parse the
# same values, the whole column decides, and if it cannot, the user is asked.
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
    """NULL or blank text, or a NaN in a typed float column (how pandas writes a missing
    value to Parquet)."""
    if col.type().is_floating():
        return col.isnull() | col.isnan()
    if col.type().is_numeric() or col.type().is_boolean():
        return col.isnull()
    return _text(col).isnull()


def value_at(table: ir.Table, raw: str, row: int) -> str:
    """The text of column ``raw`` in data row ``row`` (to quote it in an error)."""
    picked = table.filter(table[ROW] == row).select(v=table[raw].cast("string"))
    return str(picked.execute()["v"].iloc[0])


_FLOAT_ID = r"^(\d+)\.0+$"


def identifier(col: ir.Value) -> ir.StringValue:
    """Ids as trimmed strings, NULL when empty or NaN. A float export of an integer id
    ('17850.0', or a float column as pandas writes ids with gaps) becomes '17850', decided
    value by value so it holds in every row, not only where a sample looked: a cheap test
    (ends in '0', has a '.') guards the regular expression, so ordinary ids never run it."""
    t = col.type()
    if t.is_floating():
        whole = (col == col.round(0)) & (col.abs() < 2.0**53)
        return (col.isnan() | col.isinf()).ifelse(
            ibis.null("string"),
            whole.ifelse(col.cast("int64").cast("string"), col.cast("string")),
        )
    s = _text(col)
    if not t.is_string():
        return s
    candidate = s.endswith("0") & s.contains(".")
    return candidate.ifelse(s.re_replace(_FLOAT_ID, r"\1"), s)


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
        first_value = value_at(table, raw, first_row)
    else:
        first_row = None
    return ColumnCheck(
        raw,
        int(agg["non_empty"].iloc[0] or 0),
        int(agg["invalid"].iloc[0] or 0),
        first_row,
        first_value,
    )


def _parses(v: ir.StringValue, fmt: str) -> ir.BooleanValue:
    parsed = v.try_cast(dt.Timestamp()) if fmt == ISO else _try_strptime(v, fmt)
    return parsed.notnull()


def detect_date_format(
    table: ir.Table,
    raw: str,
    *,
    path: str,
    forced: str | None = None,
    sample: int = 20_000,
) -> str:
    """The date format of column ``raw``: ``forced`` when given (checked), else the format
    that parses most of a sample. When several formats parse the sample equally well (dates
    such as 03/04/2024 with every day <= 12 fit both DD/MM and MM/DD), the whole column is
    counted for them; if it cannot tell them apart either, ``AmbiguousDatesError`` asks for
    the ``date_format`` setting: a date is never guessed silently. Errors when no format fits."""
    col = table[raw]
    if col.type().is_timestamp() or col.type().is_date():
        return ISO
    if col.type().is_integer() and forced is None:
        return "%Y%m%d"
    sub = table.select(ROW, v=_text(col)).filter(ibis._.v.notnull()).limit(sample)
    candidates = [forced] if forced else [ISO, *DATE_FORMATS]
    res = sub.aggregate(
        total=sub.count(),
        **{f"f{i}": _parses(sub.v, f).cast("int64").sum() for i, f in enumerate(candidates)},
    )
    row = res.execute().iloc[0]
    n = int(row["total"])
    if n == 0:
        raise InputError(
            "the date column is empty.", column=raw, expected="dates such as 2011-12-09", path=path
        )
    scores = {fmt: int(row[f"f{i}"]) for i, fmt in enumerate(candidates)}
    top = max(scores.values())
    if top < 0.5 * n:
        first = sub.limit(3).execute()
        examples = first["v"].tolist()
        wanted = (
            f"dates in the format {forced!r} (date_format)"
            if forced
            else "dates like 2011-12-09 13:45, 09/12/2011, 12/09/2011 or 20111209"
        )
        raise InputError(
            "the date format is not recognised."
            if not forced
            else f"the dates do not match the date format {forced!r}.",
            column=raw,
            row=int(first[ROW].iloc[0]),
            value=examples[0] if examples else None,
            expected=f"{wanted} (first values: {', '.join(map(repr, examples))})",
            path=path,
            settings=("date_format",),
        )
    tied = [f for f, c in scores.items() if c == top]
    if len(tied) == 1:
        return tied[0]
    return _break_tie(table, raw, tied, path=path)


def _break_tie(table: ir.Table, raw: str, tied: list[str], *, path: str) -> str:
    """Count the tied formats over the whole column; refuse when it cannot decide."""
    v = _text(table[raw])
    agg = table.aggregate(
        **{f"f{i}": _parses(v, f).cast("int64").sum() for i, f in enumerate(tied)}
    ).execute()
    scores = {f: int(agg[f"f{i}"].iloc[0] or 0) for i, f in enumerate(tied)}
    top = max(scores.values())
    still = [f for f, c in scores.items() if c == top]
    if len(still) == 1:
        return still[0]
    # an example whose readings differ (03/04, not 01/01), to show what is at stake
    ex = table.select(ROW, v=v).filter(ibis._.v.notnull())
    differ = ex.filter(_try_strptime(ex.v, still[0]) != _try_strptime(ex.v, still[1]))
    example = differ.limit(1).execute()
    if example.empty:
        example = ex.limit(1).execute()
    value = example["v"].iloc[0]
    readings = "; ".join(
        f"{f}: {_try_strptime(ibis.literal(value), f).execute():%Y-%m-%d}" for f in still
    )
    raise AmbiguousDatesError(
        f"the dates can be read in {len(still)} ways and no value tells which (every day "
        f"and month is 12 or less, e.g. {value!r} reads as {readings}). segmint does not guess.",
        column=raw,
        row=int(example[ROW].iloc[0]),
        value=value,
        expected=(
            f"the date_format setting: {still[0]!r} or {still[1]!r}, whichever your system writes"
        ),
        path=path,
        settings=("date_format",),
    )


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
