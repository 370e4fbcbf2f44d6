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

import ibis
import ibis.expr.types as ir
import pandas as pd
import yaml

from .csvsafe import neutralise_table, write_csv
from .digest import file_sha256
from .folders import Kind, reserve, writing
from .io import ROW

if TYPE_CHECKING:
    from .analyses import ClvValidation
    from .config import Settings
    from .explain.effect import EffectResult
    from .ingest import Ingested
    from .pipeline import RunResult
    from .temporal import Tracking

QUARANTINE = "quarantine.parquet"
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
    cats = [c for c in customers.columns if isinstance(customers[c].dtype, pd.CategoricalDtype)]
    if cats:
        customers = customers.assign(**{c: customers[c].astype("string") for c in cats})
    # The two large files are written by Arrow (which releases the GIL) on a thread while
    # the rest of the run folder is written here: at 1M customers the CSV alone takes ~2.4 s.
    with ThreadPoolExecutor(max_workers=1) as pool:
        big = pool.submit(_write_customers, customers, out)
        _write_rest(result, out)
        big.result()  # re-raises a write error
    artifacts = {
        n: {"sha256": file_sha256(out / n), "bytes": (out / n).stat().st_size}
        for n in ARTIFACTS
        if (out / n).is_file()
    }
    text = json.dumps(finite({**result.manifest, "artifacts": artifacts}), indent=2, default=str)
    _text(out / "manifest.json", text)


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
    with _naming(out / QUARANTINE):
        write_quarantine(result.ingested, out / QUARANTINE)
    with _naming(out / "model.skops"):
        result.model.save(out / "model.skops")
    config = yaml.safe_dump(result.settings.model_dump(mode="json"), sort_keys=False)
    _text(out / "config.yaml", config)
    from .report import write_report, write_summary

    with _naming(out / "report.html"):
        write_report(result, out / "report.html")
    with _naming(out / "summary.md"):
        write_summary(result, out / "summary.md")
    if result.settings.report_charts:
        from .report.html import write_charts

        with _naming(out / "charts"):
            write_charts(result, out / "charts")


def _text(path: Path, text: str) -> None:
    with _naming(path):
        path.write_text(text, encoding="utf-8")


def _csv(df: pd.DataFrame, path: Path, index_label: str | None = None) -> None:
    with _naming(path):
        write_csv(df, path, index_label=index_label)


def _write_customers(customers: pd.DataFrame, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(customers, preserve_index=False)
    with _naming(out / "customers.parquet"):
        pq.write_table(table, out / "customers.parquet")
    with _naming(out / "customers.csv"):  # ~5x pandas' writer at 1M rows
        pacsv.write_csv(neutralise_table(table), str(out / "customers.csv"))


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


def finite(obj: Any) -> Any:
    """JSON has no NaN: undefined numbers become null (strict parsers reject ``NaN``)."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


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
    from .report.charts import clv_holdout

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
    from .report.tracking import write_tracking_report
    from .temporal import summary

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


def write_quarantine(ing: Ingested, path: Path) -> int:
    """All rejected rows of all inputs: source, _row, original columns as text, reason."""
    parts: list[ir.Table] = []
    if ing.transactions is not None:
        q = ing.transactions.quarantine_table()
        parts.append(q.mutate(source=ibis.literal(ing.transactions.source.path)))
    if ing.customers is not None and len(ing.customers.rejected):
        df = ing.customers.quarantine_frame()
        df["source"] = ing.customers.source.path
        parts.append(ibis.memtable(df))
    if not parts:
        empty = pd.DataFrame(
            {
                "source": pd.Series(dtype="string"),
                ROW: pd.Series(dtype="int64"),
                "reason": pd.Series(dtype="string"),
            }
        )
        empty.to_parquet(path, index=False)
        return 0
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
        # The transactions' backend executes; memtables are registered on it automatically.
        ing.transactions.source.table.get_backend().to_parquet(table, str(path))
    else:
        table.to_pandas().to_parquet(path, index=False)
    return int(sum(sum(i["rows"]["quarantined"].values()) for i in ing.inputs))
