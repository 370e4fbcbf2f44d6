"""Write a run folder (tables as Parquet/CSV, quarantine, model, manifest, config, report)
and the result folders of ``analyze effect`` and ``clv``.

The only module besides ``report`` that writes files.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import yaml

from .io import ROW

if TYPE_CHECKING:
    from .analyses import ClvValidation
    from .config import Settings
    from .explain.effect import EffectResult
    from .ingest import Ingested
    from .pipeline import RunResult
    from .temporal import Tracking

QUARANTINE = "quarantine.parquet"


def save_run(result: RunResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
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
    return out


def _write_rest(result: RunResult, out: Path) -> None:
    result.segments.to_csv(out / "segments.csv", index=False)
    if result.comparison is not None:
        result.comparison.table.to_csv(out / "comparison.csv", index=False)
        result.comparison.agreement.to_csv(out / "agreement.csv", index_label="method")
    ins = result.insights
    ins.tests.tests.to_csv(out / "tests.csv", index=False)
    ins.tests.posthoc.to_csv(out / "posthoc.csv", index=False)
    if ins.drivers is not None:
        ins.drivers.importance.to_csv(out / "drivers.csv", index=False)
    ins.anomalies.top.to_csv(out / "anomalies.csv", index=False)
    result.k_selection.to_csv(out / "k_selection.csv", index=False)
    write_quarantine(result.ingested, out / QUARANTINE)
    result.model.save(out / "model.skops")
    (out / "config.yaml").write_text(
        yaml.safe_dump(result.settings.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )
    (out / "manifest.json").write_text(
        json.dumps(finite(result.manifest), indent=2, default=str), encoding="utf-8"
    )
    from .report import write_report, write_summary

    write_report(result, out / "report.html")
    write_summary(result, out / "summary.md")
    if result.settings.report_charts:
        from .report.html import write_charts

        write_charts(result, out / "charts")


def _write_customers(customers: pd.DataFrame, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(customers, preserve_index=False)
    pq.write_table(table, out / "customers.parquet")
    pacsv.write_csv(table, str(out / "customers.csv"))  # ~5x pandas' writer at 1M rows


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
    """``analyze effect`` tables: effect.csv, posthoc.csv, groups.csv."""
    out.mkdir(parents=True, exist_ok=True)
    result.tests.to_csv(out / "effect.csv", index=False)
    result.posthoc.to_csv(out / "posthoc.csv", index=False)
    result.groups.to_csv(out / "groups.csv", index=False)
    return out


def save_clv(res: ClvValidation, out: Path) -> Path:
    """``segmint clv`` results: parameters + diagnostics (JSON), the holdout table and chart,
    per-customer predictions."""
    from .report.charts import clv_holdout

    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "calibration_end": res.calibration_end.isoformat(),
        "holdout_end": res.holdout_end.isoformat(),
        "time_unit": res.time_unit,
        "params": res.params.to_dict("records"),
        "diagnostics": res.diagnostics,
    }
    (out / "clv_params.json").write_text(json.dumps(finite(payload), indent=2), encoding="utf-8")
    res.holdout.to_csv(out / "clv_holdout.csv", index=False)
    res.customers.to_parquet(out / "clv_customers.parquet", index=False)
    clv_holdout(res.holdout, res.time_unit).write_html(
        out / "clv_holdout.html", include_plotlyjs=True, full_html=True
    )
    return out


def save_tracking(t: Tracking, out: Path, every: str, settings: Settings) -> Path:
    """``segmint track`` results: tables, ``track.json`` and ``track_report.html``."""
    from .report.tracking import write_tracking_report
    from .temporal import summary

    out.mkdir(parents=True, exist_ok=True)
    t.assignments.to_parquet(out / "assignments.parquet", index=False)
    t.migration.to_csv(out / "migration.csv", index=False)
    t.sizes.to_csv(out / "sizes.csv", index=False)
    t.flows.to_csv(out / "flows.csv", index=False)
    t.drift.to_csv(out / "drift.csv", index=False)
    t.shifts.to_csv(out / "centroid_shift.csv", index=False)
    info = {**summary(t), "every": every, "config_hash": settings.hash()}
    (out / "track.json").write_text(json.dumps(finite(info), indent=2), encoding="utf-8")
    write_tracking_report(
        t, out / "track_report.html", every=every, lapsed=settings.churn.horizon_days
    )
    return out


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
