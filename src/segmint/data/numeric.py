"""Numbers from text: each column's decimal convention decided from the whole column.

A price written ``2,55`` in one row and ``2.55`` in another cannot both be read with one
rule: reading the file as decimal-comma turns ``2.55`` into 255, reading it as decimal-point
turns ``1,690.00`` into 1.69. So a column's convention is decided from every value it holds
(not a sample), by the values that can only be read one way:

- decimal point: ``2.55``, ``0.5``, ``1234.5``, ``1e-3``, ``1,690.00``, ``1,234,567``;
- decimal comma: ``2,55``, ``0,5``, ``1234,5``, ``1.690,00``, ``1.234.567``;
- either: ``1,690`` and ``1.690`` (a thousands group or three decimals), and integers.

A column with evidence for both is refused with a row of each kind; a column whose commas
are all ambiguous is refused with a request to say which (``decimal`` setting). A column
with no comma at all is read with the decimal point (a plain cast, the common case, with no
extra pass). Values that are not finite (``NaN``, ``inf``, ``1e400``) or whose magnitude is
at least ``MAX_ABS`` are invalid: no customer amount, price, quantity or attribute is that
large, and such values are sentinels or corruption that would turn sums into infinity.

Written here rather than with a locale library: the decision needs counts over a column
in the query engine (DuckDB, later Spark), not per-value parsing in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from segmint.data.parsing import text, value_at
from segmint.data.readers import ROW
from segmint.exceptions import InputError

MAX_ABS = 1e15

_S = r"^[+-]?"
# Values that can only be read one way (RE2 syntax, anchored).
_POINT_ONLY = (
    _S + r"\d*\.(\d{1,2}|\d{4,})([eE][+-]?\d+)?$",  # 2.55, .5, 1.2345
    _S + r"(\d{4,}|0)\.\d+([eE][+-]?\d+)?$",  # 1234.567, 0.500
    _S + r"\d+(\.\d+)?[eE][+-]?\d+$",  # 1e5, 1.690e3
    _S + r"\d{1,3}(,\d{3})+\.\d*$",  # 1,690.00
    _S + r"\d{1,3}(,\d{3}){2,}$",  # 1,234,567
)
_COMMA_ONLY = (
    _S + r"\d*,(\d{1,2}|\d{4,})$",  # 2,55 ,5 1,2345
    _S + r"(\d{4,}|0),\d+$",  # 1234,567 0,500
    _S + r"\d{1,3}(\.\d{3})+,\d*$",  # 1.690,00
    _S + r"\d{1,3}(\.\d{3}){2,}$",  # 1.234.567
)
_AMBIGUOUS_COMMA = _S + r"[1-9]\d{0,2},\d{3}$"  # 1,690: thousands or three decimals
# What a valid number looks like once the convention is known.
_VALID = {
    ".": _S + r"(\d+|\d{1,3}(,\d{3})+)?(\.\d*)?([eE][+-]?\d+)?$",
    ",": _S + r"(\d+|\d{1,3}(\.\d{3})+)?(,\d*)?$",
}
NAMES = {".": "decimal point (1,234.56)", ",": "decimal comma (1.234,56)"}


@dataclass(frozen=True)
class Convention:
    """How a column's numbers are written: the decimal separator, and whether values carry
    a thousands separator (then each value is checked against the convention's pattern)."""

    decimal: str = "."
    grouped: bool = False

    def describe(self) -> str:
        return NAMES[self.decimal]


def _any(patterns: tuple[str, ...], v: ir.StringValue) -> ir.BooleanValue:
    cond = v.re_search(patterns[0])
    for p in patterns[1:]:
        cond = cond | v.re_search(p)
    return cond


def detect(
    table: ir.Table,
    raw: str,
    *,
    path: str,
    decimal: str | None = None,
    has_commas: bool | None = None,
) -> Convention:
    """The convention of column ``raw`` from all its values (see the module docstring).

    ``decimal`` ("." or ",") forces the separator; values written the other way are then
    invalid rather than misread. Raises ``InputError`` when the column mixes conventions
    or when its commas cannot be told apart. ``has_commas``, when the caller has already
    counted them, saves the query that looks for a comma."""
    col = table[raw]
    if not col.type().is_string():
        return Convention()
    t = table.select(ROW, v=text(col))
    has_comma = t.v.contains(",")
    if has_commas is None:
        has_commas = bool(has_comma.any().execute())
    if decimal is not None:
        return Convention(decimal, decimal == "," or has_commas)
    if not has_commas:
        return Convention(".", False)
    cand = t.filter(has_comma | t.v.contains("."))
    point, comma, ambiguous = (
        _any(_POINT_ONLY, cand.v),
        _any(_COMMA_ONLY, cand.v),
        cand.v.re_search(_AMBIGUOUS_COMMA),
    )
    agg = (
        cand.aggregate(
            n_point=point.cast("int64").sum(),
            n_comma=comma.cast("int64").sum(),
            n_ambiguous=ambiguous.cast("int64").sum(),
            row_point=cand[ROW].min(where=point),
            row_comma=cand[ROW].min(where=comma),
            row_ambiguous=cand[ROW].min(where=ambiguous),
        )
        .execute()
        .iloc[0]
    )
    n_point, n_comma = int(agg["n_point"] or 0), int(agg["n_comma"] or 0)
    if n_point and n_comma:
        rp, rc = int(agg["row_point"]), int(agg["row_comma"])
        vp, vc = value_at(table, raw, rp), value_at(table, raw, rc)
        raise InputError(
            f"the column mixes number conventions: {n_point:,} value(s) use a decimal point "
            f"(first at row {rp}: {vp!r}) and {n_comma:,} a decimal comma (first at row {rc}: "
            f"{vc!r}), so no single reading is right.",
            column=raw,
            expected=(
                "one convention per column: fix the rows written the other way, or set the "
                "decimal setting to '.' or ',' to quarantine them as invalid"
            ),
            path=path,
            settings=("decimal",),
        )
    if n_comma:
        return Convention(",", True)
    if n_point:
        return Convention(".", True)
    if int(agg["n_ambiguous"] or 0):
        row = int(agg["row_ambiguous"])
        value = value_at(table, raw, row)
        raise InputError(
            f"the column's commas can be read two ways: {value!r} is {value.replace(',', '')} "
            f"with a decimal point and {value.replace(',', '.')} with a decimal comma, and no "
            "value in the column tells which.",
            column=raw,
            row=row,
            value=value,
            expected="the decimal setting, '.' or ',', to say which",
            path=path,
            code="input.ambiguous_numbers",
            settings=("decimal",),
        )
    return Convention(".", True)  # commas only in values that are not numbers at all


def number(col: ir.Value, convention: Convention | None = None) -> ir.FloatingValue:
    """``col`` as float64: NULL where a non-empty value is not a number written in
    ``convention``, is not finite, or is implausibly large (``MAX_ABS``)."""
    conv = convention or Convention()
    if col.type().is_numeric() or col.type().is_boolean():
        x = col.cast("float64")
    else:
        s = text(col)
        if conv.decimal == ",":
            x = s.re_search(_VALID[","]).ifelse(
                s.replace(".", "").replace(",", ".").try_cast("float64"), None
            )
        elif conv.grouped:
            x = s.re_search(_VALID["."]).ifelse(s.replace(",", "").try_cast("float64"), None)
        else:
            x = s.try_cast("float64")
    # One comparison keeps finite, plausible values: DuckDB orders NaN above every number,
    # so NaN, inf and huge values all fail it (and NULL stays NULL). Spelling out isnan /
    # isinf made the query planner's cost grow with the square of the columns surveyed.
    return (x.abs() < MAX_ABS).ifelse(x, ibis.null("float64"))
