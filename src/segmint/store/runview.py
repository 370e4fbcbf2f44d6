"""Read parts of a finished run's folder for serving (the API, the dashboard): its segments,
one page of customers, one customer, a table as records, and a segment's customer list as a
stream of CSV or Parquet bytes.

Why not ``load_run_folder``: a server answers many small questions about a run and should not
load a million customers to return fifty. These read ``customers.parquet`` with Arrow,
filtering on the segment and reading only the rows a page needs; the export streams batch by
batch, so its memory does not grow with the segment. Values come out JSON-ready: Python
numbers and strings, with NaN as ``None``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from segmint.exceptions import (
    AmbiguousRunError,
    ArtifactError,
    CustomerNotFoundError,
    SegmentNotFoundError,
)
from segmint.results import finite
from segmint.store.csvsafe import neutralise_table
from segmint.store.tables import TABLES

__all__ = [
    "SCORE_COLUMNS",
    "customer",
    "customers_page",
    "export_csv",
    "export_parquet",
    "segment_ids",
    "segments",
    "table_records",
]

CUSTOMERS = "customers.parquet"
# the per-customer scores a run writes; every other column of customers.parquet is a feature
SCORE_COLUMNS = (
    "customer_id",
    "segment",
    "segment_name",
    "distance",
    "confidence",
    "low_confidence",
    "anomaly_score",
    "is_anomaly",
    "churn_probability",
    "clv",
)
_BATCH = 65_536


def _table(folder: Path, name: str) -> pa.Table:
    path = folder / TABLES / f"{name}.parquet"
    if not path.is_file():
        raise ArtifactError(
            f"run folder {folder.name}: it has no {name} table.", code="artifact.missing"
        )
    return pq.read_table(path)


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN → None)."""
    return finite(table.to_pylist())


def segments(folder: Path) -> list[dict[str, Any]]:
    """The run's segments table, one dict per segment."""
    return records(_table(folder, "segments"))


def table_records(folder: Path, name: str) -> list[dict[str, Any]] | None:
    """A table of ``tables/`` as records, or None when the run did not make it."""
    path = folder / TABLES / f"{name}.parquet"
    return records(pq.read_table(path)) if path.is_file() else None


def segment_ids(folder: Path, segment: str) -> list[int]:
    """The segment numbers ``segment`` names: a number, or a name (several when a name is
    shared, which the caller may refuse)."""
    table = _table(folder, "segments").select(["segment", "segment_name"]).to_pylist()
    text = segment.strip()
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is not None and any(r["segment"] == number for r in table):
        return [number]
    named = [r["segment"] for r in table if r["segment_name"] == text]
    if not named:
        known = ", ".join(f"{r['segment']} ({r['segment_name']})" for r in table)
        raise SegmentNotFoundError(
            f"run folder {folder.name} has no segment {segment!r}; its segments are: {known}.",
        )
    return named


def one_segment(folder: Path, segment: str) -> int:
    """The one segment ``segment`` names; a name several segments share is refused."""
    ids = segment_ids(folder, segment)
    if len(ids) > 1:
        raise AmbiguousRunError(
            f"{len(ids)} segments are named {segment!r}: use the segment's number, one of "
            f"{', '.join(map(str, ids))}.",
            ref=segment,
            candidates=[str(i) for i in ids],
        )
    return ids[0]


def _customers_file(folder: Path) -> pq.ParquetFile:
    path = folder / CUSTOMERS
    if not path.is_file():
        raise ArtifactError(
            f"run folder {folder.name}: it has no {CUSTOMERS}.", code="artifact.missing"
        )
    return pq.ParquetFile(path)


def _filtered(
    folder: Path, segment: int | None, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """``customers.parquet`` batch by batch, keeping one segment's rows when asked."""
    for batch in _customers_file(folder).iter_batches(batch_size=_BATCH, columns=columns):
        table = pa.Table.from_batches([batch])
        if segment is not None:
            table = table.filter(pc.equal(table["segment"], segment))
        if table.num_rows:
            yield table


def customers_page(
    folder: Path, *, segment: int | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """(how many customers match, the ``limit`` of them after ``offset``), in file order."""
    total, rows, skip = 0, [], offset
    for table in _filtered(folder, segment):
        n = table.num_rows
        total += n
        if skip >= n:
            skip -= n
            continue
        wanted = limit - len(rows)
        if wanted > 0:
            rows.extend(records(table.slice(skip, wanted)))
        skip = 0
    return total, [split_scores(r) for r in rows]


def customer(folder: Path, customer_id: str) -> dict[str, Any]:
    """One customer's scores and features."""
    file = _customers_file(folder)
    for batch in file.iter_batches(batch_size=_BATCH):
        ids = batch.column(batch.schema.get_field_index("customer_id"))
        mask = pc.equal(pc.cast(ids, pa.string()), customer_id)
        if pc.any(mask).as_py():
            row = records(pa.Table.from_batches([batch]).filter(mask).slice(0, 1))[0]
            return split_scores(row)
    raise CustomerNotFoundError(
        f"the run has no customer {customer_id!r} (customer ids are matched exactly, as text)."
    )


def split_scores(row: dict[str, Any]) -> dict[str, Any]:
    """A customers.parquet row as the scores at the top and the rest under ``features``."""
    out = {k: row[k] for k in SCORE_COLUMNS if k in row}
    out["customer_id"] = str(out.get("customer_id"))
    out["features"] = {k: v for k, v in row.items() if k not in SCORE_COLUMNS}
    return out


def export_csv(folder: Path, segment: int | None) -> Iterator[bytes]:
    """The customers (of one segment, or all) as spreadsheet-safe CSV, in chunks."""
    header = True
    for table in _filtered(folder, segment):
        sink = io.BytesIO()
        options = pacsv.WriteOptions(include_header=header)
        pacsv.write_csv(neutralise_table(table), sink, write_options=options)
        header = False
        yield sink.getvalue()
    if header:  # no customer at all: still a CSV with its header
        schema = _customers_file(folder).schema_arrow
        sink = io.BytesIO()
        pacsv.write_csv(neutralise_table(schema.empty_table()), sink)
        yield sink.getvalue()


class _Sink(io.RawIOBase):
    """A write-only file whose bytes are taken out as they are written (Parquet writes
    sequentially, so its output can be streamed)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.buffer += view
        self.position += len(view)
        return len(view)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def export_parquet(folder: Path, segment: int | None) -> Iterator[bytes]:
    """The customers (of one segment, or all) as one Parquet file, in chunks."""
    schema = _customers_file(folder).schema_arrow
    sink = _Sink()
    with pq.ParquetWriter(sink, schema) as writer:
        for table in _filtered(folder, segment):
            writer.write_table(table)
            chunk = sink.take()
            if chunk:
                yield chunk
    yield sink.take()
