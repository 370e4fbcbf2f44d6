"""The run folder's ``tables/``: every table of a ``RunResult`` as Parquet, written and read
in one place so a loaded run equals the fresh one (dtypes included; the CSVs beside them are
for people and spreadsheets, these are for ``segmint.load_run``).

Non-tabular diagnostics (BIC and k-distance curves, the dendrogram's top, each method's
labels for the scatter) go to ``tables/diagnostics.json``; arrays become lists and come back
as arrays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segmint.results import finite

if TYPE_CHECKING:
    from segmint.results import RunResult

TABLES = "tables"
DIAGNOSTICS = "diagnostics.json"
# attrs of the embedding sample kept in the Parquet file's metadata by pandas
_EMBED_ATTRS = ("explained", "index")


def write_tables(result: RunResult, folder: Path) -> None:
    """``result``'s tables into ``folder`` (inside a run folder being built)."""
    folder.mkdir(exist_ok=True)
    ins = result.insights
    frames: dict[str, pd.DataFrame | None] = {
        "segments": result.segments,
        "k_selection": result.k_selection,
        "tests": ins.tests.tests,
        "posthoc": ins.tests.posthoc,
        "drivers": ins.drivers.importance if ins.drivers is not None else None,
        "anomalies": ins.anomalies.top,
        "comparison": result.comparison.table if result.comparison is not None else None,
    }
    for name, df in frames.items():
        if df is not None:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    if result.comparison is not None:
        result.comparison.agreement.to_parquet(folder / "agreement.parquet", index=True)
    emb = result.embedding_sample.copy()
    emb.attrs = {
        "explained": list(result.embedding_sample.attrs.get("explained", [])),
        "index": np.asarray(result.embedding_sample.attrs.get("index", [])).tolist(),
    }
    emb.to_parquet(folder / "embedding.parquet", index=False)
    text = json.dumps(finite(_plain(result.diagnostics)), indent=1)
    (folder / DIAGNOSTICS).write_text(text, encoding="utf-8")


def read_table(folder: Path, name: str) -> pd.DataFrame | None:
    """One table, or None when the run did not produce it."""
    path = folder / f"{name}.parquet"
    if not path.is_file():
        return None
    df = pd.read_parquet(path)
    if name == "embedding":
        df.attrs = {
            "explained": list(df.attrs.get("explained", [])),
            "index": np.asarray(df.attrs.get("index", []), dtype=np.int64),
        }
    return df


def read_diagnostics(folder: Path) -> dict[str, Any]:
    path = folder / DIAGNOSTICS
    if not path.is_file():
        return {}
    d = json.loads(path.read_text(encoding="utf-8"))
    if "linkage" in d:
        d["linkage"] = np.asarray(d["linkage"], dtype=float)
    if "method_labels" in d:
        d["method_labels"] = {k: np.asarray(v) for k, v in d["method_labels"].items()}
    return d


def _plain(obj: Any) -> Any:
    """JSON-ready: arrays to lists, numpy scalars to Python numbers."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
