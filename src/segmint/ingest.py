"""Inputs → cleaned order lines and/or customer table, with per-input accounting.

Shared by ``pipeline.run`` and ``predict`` so new data is read exactly like training data.
Accepts file paths or pandas DataFrames (for notebooks).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import ibis
import pandas as pd

from . import io
from .clean import CleanTransactions, clean_transactions
from .config import Settings
from .customers import CleanCustomers, clean_customers
from .derive import derive_columns
from .exceptions import ConfigError, InputError
from .schema import auto_map, detect_kind


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
    data: Any, con: ibis.BaseBackend, name: str = "dataframe", delimiter: str | None = None
) -> io.Source:
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise InputError("the DataFrame has no rows.", path=name)
        df = data.copy()
        df.columns = [str(c) for c in df.columns]
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].astype("string")
        table = io.register_frame(con, df, "frame")
        return io.Source(name, "dataframe", table, list(df.columns))
    return io.read(str(data), con, delimiter=delimiter)


def ingest(
    inputs: list[Any],
    settings: Settings,
    con: ibis.BaseBackend,
    *,
    reference: _dt.datetime | None = None,
) -> Ingested:
    """Read, map, detect and clean every input; at most one of each kind."""
    if not inputs:
        raise InputError("no input was given.", expected="a CSV, Parquet or Excel file")
    out = Ingested()
    overrides = settings.columns.overrides()
    for i, data in enumerate(inputs):
        src = source_from(data, con, name=f"dataframe[{i}]", delimiter=settings.delimiter)
        cmap = auto_map(
            src.columns,
            {k: v for k, v in overrides.items() if v in src.columns},
            path=src.path,
        )
        kind = settings.kind if (settings.kind != "auto" and len(inputs) == 1) else "auto"
        if kind == "auto":
            kind = detect_kind(cmap)
        entry: dict[str, Any] = {
            "path": src.path,
            "format": src.format,
            "kind": kind,
            "delimiter": src.delimiter,
            "encoding": src.encoding,
            "columns": dict(cmap.mapping),
        }
        if kind == "transactions":
            if out.transactions is not None:
                raise InputError(
                    "two order-line inputs were given; combine them into one file first.",
                    path=src.path,
                )
            tx = clean_transactions(src, cmap, settings.cleaning, con)
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
            cu = clean_customers(src, cmap, settings.cleaning, reference)
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
        out.inputs.append(entry)
    if settings.derive and out.customers is None:
        raise ConfigError(
            [
                "derive adds customer-table columns, but no customer table was given "
                f"(derive: {', '.join(settings.derive)})"
            ]
        )
    return out
