"""Write a run folder (tables as Parquet/CSV, quarantine, model, manifest, config, report)
and the result folders of ``analyze effect``, ``clv`` and ``track``.

The only module besides ``report`` that writes files. Every folder is written whole into a
partial sibling and swapped into place (``folders.writing``): an interrupted or failed write
leaves the previous folder as it was. CSVs are formula-safe (``csvsafe``).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from segmint.digest import file_sha256
from segmint.results import Artifact, finite
from segmint.store.csvsafe import neutralise_table, write_csv
from segmint.store.folders import Kind, reserve, writing
from segmint.store.loading import QUARANTINE
from segmint.store.tables import TABLES, write_tables

if TYPE_CHECKING:
    from segmint.config import Settings
    from segmint.explain.effect import EffectResult
    from segmint.results import ClvValidation, RunResult, Tracking

# Files hashed into the manifest (written last): predict refuses a model.skops that does not
# match, i.e. a folder mixing two runs' files. The signature sidecar is not hashed: it
# authenticates model.skops itself, and `segmint trust` rewrites it on purpose.
ARTIFACTS = ("model.skops", "customers.parquet", "config.yaml")
# Every top-level name each command writes: a folder holding anything else is the user's and
# is never replaced. Add a file here when a command starts writing it.
RUN = Kind(
    "run folder",
    "manifest.json",
    frozenset(
        {
            *ARTIFACTS,
            "model.skops.sig",
            "customers.csv",
            "segments.csv",
            "comparison.csv",
            "agreement.csv",
            "tests.csv",
            "posthoc.csv",
            "drivers.csv",
            "anomalies.csv",
            "k_selection.csv",
            QUARANTINE,
            "manifest.json",
            "report.html",
            "summary.md",
            "charts",
            TABLES,
        }
    ),
)
TRACK_FILES = ("migration.csv", "sizes.csv", "flows.csv", "drift.csv", "centroid_shift.csv")
TRACK = Kind(
    "tracking folder",
    "track.json",
    frozenset({"track.json", "track_report.html", "assignments.parquet", "run", *TRACK_FILES}),
)
CLV = Kind(
    "CLV folder",
    "clv_params.json",
    frozenset({"clv_params.json", "clv_holdout.csv", "clv_customers.parquet", "clv_holdout.html"}),
)
EFFECT = Kind("effect folder", "effect.csv", frozenset({"effect.csv", "posthoc.csv", "groups.csv"}))
KINDS = {"run": RUN, "track": TRACK, "clv": CLV, "effect": EFFECT}


def output_folder(out: str | Path, kind: str) -> AbstractContextManager[Any]:
    """Reserve ``out`` (``kind``: run, track, clv or effect) before the long work: refuses a
    file, a folder segmint did not write, an unwritable parent or a folder another process is
    writing, at once; the ``save_*`` call inside then writes into the reservation."""
    return reserve(out, KINDS[kind])


def save_run(result: RunResult, out: Path) -> Path:
    """Write the run folder atomically: the old run stays whole until the new one is."""
    with writing(out, RUN) as part:
        write_run_files(result, part)
    return Path(out)


def write_run_files(result: RunResult, out: Path) -> None:
    """Every file of a run into ``out`` (a folder being built); the manifest last, with the
    hashes of the artifacts."""
    out.mkdir(exist_ok=True)
    customers = result.customers
    # The two large files are written by Arrow (which releases the GIL) on a thread while
    # the rest of the run folder is written here: at 1M customers the CSV alone takes ~2.4 s.
    with ThreadPoolExecutor(max_workers=1) as pool:
        big = pool.submit(_write_customers, customers, out)
        _write_rest(result, out)
        big.result()  # re-raises a write error
    artifacts = {
        n: Artifact(sha256=file_sha256(out / n), bytes=(out / n).stat().st_size)
        for n in ARTIFACTS
        if (out / n).is_file()
    }
    manifest = result.manifest.model_copy(update={"artifacts": artifacts})
    _text(out / "manifest.json", manifest.to_json())


def _write_rest(result: RunResult, out: Path) -> None:
    _csv(result.segments, out / "segments.csv")
    if result.comparison is not None:
        _csv(result.comparison.table, out / "comparison.csv")
        _csv(result.comparison.agreement, out / "agreement.csv", index_label="method")
    ins = result.insights
    _csv(ins.tests.tests, out / "tests.csv")
    _csv(ins.tests.posthoc, out / "posthoc.csv")
    if ins.drivers is not None:
        _csv(ins.drivers.importance, out / "drivers.csv")
    _csv(ins.anomalies.top, out / "anomalies.csv")
    _csv(result.k_selection, out / "k_selection.csv")
    write_quarantine(result.quarantine, out / QUARANTINE)
    write_tables(result, out / TABLES)
    with _naming(out / "model.skops"):
        result.model.save(out / "model.skops")
    config = yaml.safe_dump(result.settings.model_dump(mode="json"), sort_keys=False)
    _text(out / "config.yaml", config)
    from segmint.report import write_report, write_summary

    with _naming(out / "report.html"):
        write_report(result, out / "report.html")
    with _naming(out / "summary.md"):
        write_summary(result, out / "summary.md")
    if result.settings.report_charts:
        from segmint.report.html import write_charts

        with _naming(out / "charts"):
            write_charts(result, out / "charts")


def write_quarantine(quarantine: pd.DataFrame, path: Path) -> None:
    """The rejected rows (source, ``_row``, original values as text, reason) as Parquet."""
    _parquet(quarantine, path)


def _parquet(df: pd.DataFrame, path: Path) -> None:
    with _naming(path):
        df.to_parquet(path, index=False)


def _text(path: Path, text: str) -> None:
    with _naming(path):
        path.write_text(text, encoding="utf-8")


def _csv(df: pd.DataFrame, path: Path, index_label: str | None = None) -> None:
    with _naming(path):
        write_csv(df, path, index_label=index_label)


def _write_customers(customers: pd.DataFrame, out: Path) -> None:
    """customers.parquet keeps every dtype (categories too: a loaded run equals the fresh
    one); customers.csv gets categories as text (Arrow's CSV writer takes no dictionaries)
    and formula-safe cells."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(customers, preserve_index=False)
    with _naming(out / "customers.parquet"):
        pq.write_table(table, out / "customers.parquet")
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, pc.cast(table.column(i), f.type.value_type))
    with _naming(out / "customers.csv"):  # ~5x pandas' writer at 1M rows
        pacsv.write_csv(
            neutralise_table(table.replace_schema_metadata()), str(out / "customers.csv")
        )


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Arrow and DuckDB report a failed write without the file's name (DuckDB not even as an
    OSError): re-raise it as an OSError naming ``path``, so the user learns which file."""
    try:
        yield
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(_errno_of(exc), str(exc), str(path)) from exc
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "duckdb" or "IO" not in type(exc).__name__:
            raise
        raise OSError(_errno_of(exc), str(exc), str(path)) from exc


def _errno_of(exc: BaseException) -> int:
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.ENOSPC if "no space left" in str(exc).lower() else errno.EIO


def save_effect(result: EffectResult, out: Path) -> Path:
    """``analyze effect`` tables: effect.csv, posthoc.csv, groups.csv (atomically)."""
    with writing(out, EFFECT) as part:
        _csv(result.tests, part / "effect.csv")
        _csv(result.posthoc, part / "posthoc.csv")
        _csv(result.groups, part / "groups.csv")
    return Path(out)


def save_clv(res: ClvValidation, out: Path) -> Path:
    """``segmint clv`` results: parameters + diagnostics (JSON), the holdout table and chart,
    per-customer predictions (atomically)."""
    from segmint.report.charts import clv_holdout

    payload = {
        "calibration_end": res.calibration_end.isoformat(),
        "holdout_end": res.holdout_end.isoformat(),
        "time_unit": res.time_unit,
        "params": res.params.to_dict("records"),
        "diagnostics": res.diagnostics,
    }
    with writing(out, CLV) as part:
        _csv(res.holdout, part / "clv_holdout.csv")
        with _naming(part / "clv_customers.parquet"):
            res.customers.to_parquet(part / "clv_customers.parquet", index=False)
        with _naming(part / "clv_holdout.html"):
            clv_holdout(res.holdout, res.time_unit).write_html(
                part / "clv_holdout.html", include_plotlyjs=True, full_html=True
            )
        text = json.dumps(finite(payload), indent=2)
        _text(part / "clv_params.json", text)
    return Path(out)


def save_tracking(
    t: Tracking, out: Path, every: str, settings: Settings, run: RunResult | None = None
) -> Path:
    """``segmint track`` results: tables, ``track.json``, ``track_report.html`` and, given
    ``run``, the fitted run in ``run/`` — one folder, written atomically."""
    from segmint.report.tracking import write_tracking_report
    from segmint.tracking.snapshots import summary

    with writing(out, TRACK) as part:
        if run is not None:
            write_run_files(run, part / "run")
        with _naming(part / "assignments.parquet"):
            t.assignments.to_parquet(part / "assignments.parquet", index=False)
        tables = (t.migration, t.sizes, t.flows, t.drift, t.shifts)
        for name, table in zip(TRACK_FILES, tables, strict=True):
            _csv(table, part / name)
        with _naming(part / "track_report.html"):
            write_tracking_report(
                t, part / "track_report.html", every=every, lapsed=settings.churn.horizon_days
            )
        info = {**summary(t), "every": every, "config_hash": settings.hash()}
        text = json.dumps(finite(info), indent=2)
        _text(part / "track.json", text)
    return Path(out)
