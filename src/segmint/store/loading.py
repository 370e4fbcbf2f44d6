"""Read a run folder back: its manifest (typed, checked), its model (signed, hash-checked
against the manifest) and the whole ``RunResult``, with the large tables, the features, the
insights and the model read on first access.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from segmint.digest import file_sha256
from segmint.evaluate.select_k import Decision
from segmint.exceptions import ArtifactError
from segmint.explain import Insights
from segmint.explain.anomalies import Anomalies
from segmint.explain.drivers import Drivers
from segmint.explain.stats import GroupTests
from segmint.features import CustomerFeatures
from segmint.model import SegmentationModel
from segmint.results import MANIFEST_SCHEMA, Deferred, MethodComparison, RunManifest, RunResult
from segmint.store.tables import TABLES, read_diagnostics, read_table

MANIFEST = "manifest.json"
QUARANTINE = "quarantine.parquet"
# score columns a run puts before the features in customers.parquet
_ANOMALY = ["anomaly_score", "is_anomaly"]


def read_manifest(folder: str | Path) -> RunManifest:
    """The run's manifest, or an ``ArtifactError`` saying why it cannot be used."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{Path(folder)}: not a segmint run folder (no {MANIFEST}).", code="artifact.missing"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: expected a JSON object.")
    schema = raw.get("schema_version", MANIFEST_SCHEMA)
    if not isinstance(schema, int) or schema > MANIFEST_SCHEMA:
        raise ArtifactError(
            f"{path}: written by segmint {raw.get('version', '?')} with manifest layout "
            f"{schema!r}; this segmint ({MANIFEST_SCHEMA}) cannot read it. Upgrade segmint."
        )
    try:
        return RunManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ArtifactError(
            f"{path}: written by segmint {raw.get('version', '?')}, in a layout this segmint "
            f"cannot read ({problems}). Run the segmentation again with this version."
        ) from None


def load_run_model(folder: str | Path) -> SegmentationModel:
    """The model of a run folder, checked against the folder's manifest: the config hash, and
    the model's sha256 the manifest records (a folder whose model was copied from another run,
    or left over from an interrupted write by an older segmint, is refused)."""
    d = Path(folder)
    path = d / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{d}: not a segmint run folder (no {MANIFEST}).", code="artifact.missing"
        )
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        expected = m["config_hash"]
    except (ValueError, KeyError, TypeError):
        raise ArtifactError(f"{path}: the manifest is not valid JSON with a config_hash.") from None
    # absent in run folders written before the hashes were recorded
    want = ((m.get("artifacts") or {}).get("model.skops") or {}).get("sha256")
    model = d / "model.skops"
    if want is not None:
        got = file_sha256(model) if model.is_file() else None
        if got != want:
            found = f"sha256 {got[:12]}" if got else "missing"
            raise ArtifactError(
                f"{model}: the file does not match the run's manifest ({found}; the manifest "
                f"records sha256 {want[:12]}): the folder mixes files from two runs. Use the "
                "run folder the model came from, or make the run again into this folder.",
                code="model.mismatch",
            )
    return SegmentationModel.load(model, expected_hash=expected)


def load_run_folder(folder: str | Path) -> RunResult:
    """The ``RunResult`` saved in ``folder``: the same shape ``segmint.run`` returns."""
    d = Path(folder)
    manifest = read_manifest(d)
    tables = d / TABLES
    if not (tables / "segments.parquet").is_file():
        raise ArtifactError(
            f"{d}: the run folder has no {TABLES}/ (written by a segmint before 0.2); its "
            "files are readable, but it cannot be loaded as a result. Run it again."
        )
    customers = _once(lambda: pd.read_parquet(d / "customers.parquet"))
    segments = read_table(tables, "segments")
    comparison = read_table(tables, "comparison")
    return RunResult(
        settings=manifest.config,
        manifest=manifest,
        customers=Deferred(customers),
        segments=segments,
        k_selection=read_table(tables, "k_selection"),
        decision=Decision(manifest.k, dict(manifest.selection.votes), manifest.selection.reason),
        model=Deferred(lambda: load_run_model(d)),
        features=Deferred(lambda: _features(manifest, customers())),
        insights=Deferred(lambda: _insights(manifest, tables, segments, customers())),
        embedding_sample=read_table(tables, "embedding"),
        quarantine=Deferred(lambda: pd.read_parquet(d / QUARANTINE)),
        diagnostics=read_diagnostics(tables),
        comparison=None
        if comparison is None
        else MethodComparison(
            comparison,
            read_table(tables, "agreement"),
            manifest.selection.algorithm,
            manifest.selection.compared or "",
        ),
    )


def _once(load):
    cache: list[pd.DataFrame] = []

    def get() -> pd.DataFrame:
        if not cache:
            cache.append(load())
        return cache[0]

    return get


def _features(manifest: RunManifest, customers: pd.DataFrame) -> CustomerFeatures:
    f = manifest.features
    info = dict(manifest.customers_detail)
    if manifest.clv is not None:
        info["clv"] = manifest.clv
    frame = customers[["customer_id", *f.columns]].copy()
    return CustomerFeatures(frame, list(f.numeric), list(f.categorical), _naive(manifest), info)


def _naive(manifest: RunManifest):
    end = manifest.observation_end
    return end.replace(tzinfo=None) if end is not None and end.tzinfo is not None else end


def _insights(
    manifest: RunManifest, tables: Path, segments: pd.DataFrame, customers: pd.DataFrame
) -> Insights:
    e = manifest.explain
    importance = read_table(tables, "drivers")
    return Insights(
        segments=segments,
        tests=GroupTests(read_table(tables, "tests"), read_table(tables, "posthoc")),
        drivers=None if importance is None else Drivers(e.drivers_fidelity or {}, importance),
        anomalies=Anomalies(
            scores=customers[_ANOMALY].reset_index(drop=True),
            top=read_table(tables, "anomalies"),
            flagged=e.anomalies_flagged,
            signals=list(e.anomaly_signals),
        ),
        headline=dict(e.headline),
    )
