"""Inputs → cleaned order lines and/or customer table, with per-input accounting.

Shared by ``pipeline.run`` and ``predict`` so new data is read exactly like training data.
Accepts file paths or pandas DataFrames (for notebooks).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from segmint.config import Settings
from segmint.data import readers
from segmint.data.clean_customers import CleanCustomers, clean_customers
from segmint.data.clean_lines import CleanTransactions, clean_transactions
from segmint.data.derive import derive_columns
from segmint.data.readers import ROW
from segmint.data.schema import ColumnMap, auto_map, detect_kind, may_be_order_lines
from segmint.digest import fingerprint
from segmint.exceptions import ConfigError, InputError


@dataclass
class Ingested:
    transactions: CleanTransactions | None = None
    customers: CleanCustomers | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> dict[str, Any]:
        read = sum(i["rows"]["read"] for i in self.inputs)
        kept = sum(i["rows"]["kept"] for i in self.inputs)
        quarantined: dict[str, int] = {}
        for i in self.inputs:
            for r, n in i["rows"]["quarantined"].items():
                quarantined[r] = quarantined.get(r, 0) + n
        return {"read": read, "kept": kept, "quarantined": quarantined}


def source_from(
    data: Any,
    con: ibis.BaseBackend,
    name: str = "dataframe",
    delimiter: str | None = None,
    max_columns: int = readers.MAX_COLUMNS,
) -> readers.Source:
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise InputError("the DataFrame has no rows.", path=name, code="input.unreadable")
        df = data.copy()
        df.columns = [str(c) for c in df.columns]
        readers.check_columns(list(df.columns), name, max_columns)
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].astype("string")
        table = readers.register_frame(con, df, "frame")
        return readers.Source(name, "dataframe", table, list(df.columns))
    return readers.read(str(data), con, delimiter=delimiter, max_columns=max_columns)


def ingest(
    inputs: list[Any],
    settings: Settings,
    con: ibis.BaseBackend,
    *,
    reference: _dt.datetime | None = None,
) -> Ingested:
    """Read, map, detect and clean every input; at most one of each kind."""
    if not inputs:
        raise InputError(
            "no input was given.", expected="a CSV, Parquet or Excel file", settings=("inputs",)
        )
    out = Ingested()
    overrides = settings.columns.overrides()
    sources = [
        source_from(
            data,
            con,
            name=f"dataframe[{i}]",
            delimiter=settings.delimiter,
            max_columns=settings.max_columns,
        )
        for i, data in enumerate(inputs)
    ]
    _check_mapping(overrides, sources)
    for data, src in zip(inputs, sources, strict=True):
        cmap = auto_map(
            src.columns,
            {k: v for k, v in overrides.items() if v in src.columns},
            path=src.path,
        )
        kind = settings.kind if (settings.kind != "auto" and len(inputs) == 1) else "auto"
        if kind == "auto":
            kind = detect_kind(cmap, ids_repeat=may_be_order_lines(cmap) and _ids_repeat(src, cmap))
        entry: dict[str, Any] = {
            "path": src.path,
            "format": src.format,
            "kind": kind,
            "delimiter": src.delimiter,
            "encoding": src.encoding,
            "columns": dict(cmap.mapping),
            **fingerprint(data),  # sha256 + bytes: which data a run and its model came from
        }
        if kind == "transactions":
            if out.transactions is not None:
                raise InputError(
                    "two order-line inputs were given; combine them into one file first.",
                    path=src.path,
                )
            tx = clean_transactions(
                src,
                cmap,
                settings.cleaning,
                con,
                date_format=settings.date_format,
                decimal=settings.decimal,
            )
            out.transactions = tx
            entry["rows"] = {
                "read": tx.read,
                "kept": tx.kept,
                "purchases": tx.purchases,
                "returns": tx.returns,
                "quarantined": tx.quarantined,
            }
            entry["notes"] = tx.notes
        else:
            if out.customers is not None:
                raise InputError(
                    "two customer tables were given; join them into one file first.",
                    path=src.path,
                )
            cu = clean_customers(
                src,
                cmap,
                settings.cleaning,
                reference,
                date_format=settings.date_format,
                decimal=settings.decimal,
            )
            if settings.derive:
                cu.frame = derive_columns(cu.frame, settings.derive, source=f"derive ({src.path})")
                cu.numeric += list(settings.derive)
            out.customers = cu
            entry["columns"] = {"customer_id": cmap.get("customer_id")}
            entry["rows"] = {"read": cu.read, "kept": cu.kept, "quarantined": cu.quarantined}
            entry["notes"] = cu.notes
            entry["excluded_columns"] = cu.excluded
        assert entry["rows"]["read"] == entry["rows"]["kept"] + sum(
            entry["rows"]["quarantined"].values()
        ), "row accounting must balance"
        _require_something_kept(entry)
        out.inputs.append(entry)
    if settings.derive and out.customers is None:
        raise ConfigError(
            [
                "derive adds customer-table columns, but no customer table was given "
                f"(derive: {', '.join(settings.derive)})"
            ],
            settings=("derive",),
        )
    return out


def _check_mapping(overrides: dict[str, str], sources: list[readers.Source]) -> None:
    """Every column the user mapped must exist in some input: a typo is never ignored."""
    wrong = [
        canon for canon, col in overrides.items() if not any(col in src.columns for src in sources)
    ]
    if wrong:
        missing = [f"{canon}={overrides[canon]!r}" for canon in wrong]
        files = "; ".join(f"{src.path}: {', '.join(map(repr, src.columns))}" for src in sources)
        raise InputError(
            f"the column mapping names column(s) no input has: {', '.join(missing)}.",
            expected=f"a column of the input (columns are: {files}); names are case-sensitive",
            path=", ".join(src.path for src in sources),
            code="input.unknown_column",
            settings=[f"columns.{canon}" for canon in wrong],
        )


def _ids_repeat(src: readers.Source, cmap: ColumnMap) -> bool:
    """Whether some customer id occurs on more than one row (one query)."""
    col = src.table[cmap.get("customer_id")]
    agg = src.table.aggregate(n=src.table.count(), distinct=col.nunique()).execute()
    return int(agg["distinct"].iloc[0]) < int(agg["n"].iloc[0])


def _require_something_kept(entry: dict[str, Any]) -> None:
    """Stop when cleaning left no purchase (or no customer): every later number would be
    undefined, and the quarantine says why."""
    rows = entry["rows"]
    left = rows.get("purchases", rows["kept"])
    if left:
        return
    reasons = ", ".join(f"{r}: {n:,}" for r, n in rows["quarantined"].items()) or "none"
    what = "purchases" if "purchases" in rows else "customers"
    returns = f" and {rows['returns']:,} are returns" if rows.get("returns") else ""
    raise InputError(
        f"no {what} are left after cleaning: of {rows['read']:,} rows, "
        f"{sum(rows['quarantined'].values()):,} were quarantined ({reasons}){returns}. "
        "There is nothing to segment.",
        expected=(
            "rows that pass the cleaning rules (see the reasons; dates after the run time are "
            "'future_date', cancellations and negative quantities are returns)"
        ),
        path=entry["path"],
    )


def quarantine_frame(ing: Ingested) -> pd.DataFrame:
    """Every rejected row of every input: ``source``, ``_row``, the original columns as text
    and ``reason``, read while the engine is open (a run's result keeps no connection)."""
    parts: list[ir.Table] = []
    if ing.transactions is not None:
        q = ing.transactions.quarantine_table()
        parts.append(q.mutate(source=ibis.literal(ing.transactions.source.path)))
    if ing.customers is not None and len(ing.customers.rejected):
        df = ing.customers.quarantine_frame()
        df["source"] = ing.customers.source.path
        parts.append(ibis.memtable(df))
    if not parts:
        return pd.DataFrame(
            {
                "source": pd.Series(dtype="string"),
                ROW: pd.Series(dtype="int64"),
                "reason": pd.Series(dtype="string"),
            }
        )
    columns: list[str] = ["source", ROW]
    for p in parts:
        columns += [c for c in p.columns if c not in columns and c != "reason"]
    columns.append("reason")
    aligned = []
    for p in parts:
        sel = {}
        for c in columns:
            if c in p.columns:
                sel[c] = p[c].cast("int64") if c == ROW else p[c].cast("string")
            else:
                sel[c] = ibis.null("int64" if c == ROW else "string")
        aligned.append(p.select(**sel))
    table = aligned[0] if len(aligned) == 1 else ibis.union(*aligned)
    if ing.transactions is not None:
        # the transactions' backend executes; memtables are registered on it automatically
        backend = ing.transactions.source.table.get_backend()
        return backend.to_pyarrow(table.order_by(["source", ROW])).to_pandas()
    return table.order_by(["source", ROW]).to_pandas()
