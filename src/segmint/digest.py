"""Content hashes of inputs and artifacts.

Why: a run's manifest and its model record which data they came from (``sha256`` and size of
each input), so ``predict`` can say what a model was trained on; and the manifest records the
hash of the files ``predict`` loads, so a folder mixing two runs' files is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in blocks (a multi-GB input never sits in memory; hashlib
    releases the GIL on each block, so other threads keep working)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def frame_sha256(df: pd.DataFrame) -> str:
    """A sha256 of a DataFrame's content: column names, dtypes and values (not the index).

    Uses pandas' vectorised row hashes; cells pandas cannot hash (lists, dicts) are hashed
    through their text."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    try:
        rows = pd.util.hash_pandas_object(df, index=False)
    except TypeError:
        rows = pd.util.hash_pandas_object(df.astype(str), index=False)
    h.update(rows.to_numpy().tobytes())
    return h.hexdigest()


def fingerprint(data: Any) -> dict[str, Any]:
    """``{"sha256": ..., "bytes": ...}`` for an input: a file path (its bytes on disk) or a
    DataFrame (its content hash and in-memory size)."""
    if isinstance(data, pd.DataFrame):
        size = int(data.memory_usage(index=True, deep=False).sum())
        return {"sha256": frame_sha256(data), "bytes": size}
    p = Path(data)
    return {"sha256": file_sha256(p), "bytes": p.stat().st_size}
