"""Spreadsheet-safe CSV: a text cell a spreadsheet would run as a formula gets a leading ``'``.

Why: customer ids, categories and column names come from the user's data, and a cell starting
with ``=``, ``+``, ``-``, ``@``, tab or carriage return is executed by Excel, LibreOffice and
Google Sheets when the CSV is opened (formula injection: ``=HYPERLINK(...)``, DDE). OWASP's
remedy is to prefix such cells with a single quote. A cell that is just a number (``-12``,
``+3.5``) is not a formula and is left alone; numeric columns are never touched. Every CSV
segmint writes goes through ``write_csv`` (pandas) or ``neutralise_table`` (Arrow); Parquet
files keep the raw values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRIGGER = r"^[=+\-@\t\r]"
NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_TRIGGER, _NUMBER = re.compile(TRIGGER), re.compile(NUMBER)


def neutralise_text(value: Any) -> Any:
    """``'`` + ``value`` when a spreadsheet would read the text as a formula; else ``value``."""
    if isinstance(value, str) and _TRIGGER.match(value) and not _NUMBER.match(value):
        return "'" + value
    return value


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its text cells and column names neutralised (a copy; ``df`` is unchanged)."""
    return _neutralised(df)[0]


def _neutralised(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The neutralised frame, and whether a text cell or name holds a carriage return."""
    out = df.copy(deep=False)
    cr = any("\r" in str(c) for c in df.columns)
    for i in range(df.shape[1]):
        s = df.iloc[:, i]
        if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
            fixed, has_cr = _neutralise_series(s)
            out.isetitem(i, fixed)
            cr = cr or has_cr
    out.columns = [neutralise_text(c) for c in df.columns]
    return out, cr


def _neutralise_series(s: pd.Series) -> tuple[pd.Series, bool]:
    # one check per distinct value: ids are unique, but names and categories repeat a lot
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    values = np.asarray(uniques, dtype=object)
    fixed = np.array([neutralise_text(v) for v in values], dtype=object)
    cr = any(isinstance(v, str) and "\r" in v for v in values)
    if all(a is b for a, b in zip(values, fixed, strict=True)):
        return s, cr
    cells = pd.Series(fixed[np.maximum(codes, 0)], index=s.index, name=s.name, dtype=object)
    cells = cells.where(codes >= 0, s.astype(object))  # missing cells stay missing
    return (cells.astype(s.dtype) if isinstance(s.dtype, pd.StringDtype) else cells), cr


def write_csv(df: pd.DataFrame, path: str | Path, *, index_label: str | None = None) -> None:
    """``df.to_csv`` with formula-safe text; ``index_label`` writes the index as a first
    column of that name.

    Python's csv writer quotes a field holding a line feed but not one holding a lone carriage
    return, which spreadsheets take as a line break: ``'\r=cmd`` would split into a new row
    starting with ``=cmd``. When the text has a carriage return the file ends its lines with
    CRLF (RFC 4180), which makes the writer quote such fields."""
    frame = df.rename_axis(index_label).reset_index() if index_label else df
    safe, cr = _neutralised(frame)
    safe.to_csv(path, index=False, lineterminator="\r\n" if cr else "\n")


def neutralise_table(table: Any) -> Any:
    """A ``pyarrow.Table`` with its text columns and column names neutralised, vectorised
    (the 1M-customer ``customers.csv``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for col in table.columns:
        kind = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            if pa.types.is_dictionary(col.type):
                col = pc.cast(col, kind)
            risky = pc.and_(
                pc.match_substring_regex(col, TRIGGER),
                pc.invert(pc.match_substring_regex(col, NUMBER)),
            )
            if pc.any(risky).as_py():
                quote, empty = pa.scalar("'", type=kind), pa.scalar("", type=kind)
                col = pc.if_else(risky, pc.binary_join_element_wise(quote, col, empty), col)
        columns.append(col)
    names = [neutralise_text(n) for n in table.column_names]
    return pa.table(columns, names=names)
