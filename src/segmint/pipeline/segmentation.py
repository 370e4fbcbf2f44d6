"""``run(settings)`` → ``RunResult``: the segmentation flow behind the CLI, API and report.

Reads nothing but through ``ingest`` and writes nothing (``store.save_run`` writes the
folder). Each stage returns new values; none changes its inputs.
"""

from __future__ import annotations

import datetime as _dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pandas as pd

from segmint._version import __version__
from segmint.config import Settings
from segmint.data import readers
from segmint.data.ingest import Ingested, ingest, quarantine_frame
from segmint.exceptions import SegmintError
from segmint.explain import Insights, explain
from segmint.features import CustomerFeatures, build_features
from segmint.features.build import DESCRIPTIVE
from segmint.model import SegmentationModel, score_matrix
from segmint.pipeline.clustering import (
    Segmented,
    cluster_diagnostics,
    embedding_sample,
    segment_features,
)
from segmint.pipeline.compare import Comparison
from segmint.pipeline.stages import Progress, stage
from segmint.predictive.churn import ChurnResult, churn_risk
from segmint.results import MethodComparison, RunManifest, RunResult

log = logging.getLogger(__name__)
STAGES = ("ingest", "features", "churn", "preprocess", "cluster", "explain")


def run(
    settings: Settings, *, progress: Progress | None = None, inputs: list[Any] | None = None
) -> RunResult:
    """Segment the customers in ``settings.inputs`` (or ``inputs``: paths or DataFrames).

    The DuckDB engine lives for this call only: the result holds plain values."""
    with readers.engine(memory_limit=settings.memory_limit) as con:
        timings: dict[str, float] = {}
        with stage("ingest", timings, progress):
            ing = ingest(
                inputs if inputs is not None else settings.inputs,
                settings,
                con,
                reference=observation_end_of(settings),
            )
        return segment_ingested(ing, settings, progress=progress, timings=timings)


def segment_ingested(
    ing: Ingested,
    settings: Settings,
    *,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> RunResult:
    """The stages after ``ingest``: features, churn, preprocess, cluster, explain. The caller
    owns the engine behind ``ing`` (``run`` closes it; ``track`` keeps it for snapshots)."""
    timings = dict(timings or {})
    with stage("features", timings, progress):
        feats = build_features(
            ing.transactions,
            ing.customers,
            observation_end=observation_end_of(settings),
            top_categories=settings.top_categories,
            clv=settings.clv,
        )
        if settings.features:
            feats = feats.select(settings.features)
        feats, dropped = feats.drop_uninformative()
    # Churn needs the lines and the customers' features only, so it runs on a thread beside
    # preprocess and cluster (DuckDB, boosting and BLAS release the GIL) and is joined before
    # explain. Its timing is its own; the stages overlap.
    pool = ThreadPoolExecutor(max_workers=1)
    churn_job = pool.submit(_churn, ing, feats, settings, timings, progress)
    try:
        sg = segment_features(feats, settings, timings, progress)
        churn, churn_res = churn_job.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    feats = _with_churn_scores(feats, churn_res)
    with stage("explain", timings, progress):
        insights = _explain(feats, sg, settings, progress)
        customers, names = _score(feats, sg, insights, settings)
        embedding, diagnostics = _pictures(feats, sg, settings)
    model = _model(feats, sg, churn_res, names, ing, settings)
    manifest = _manifest(ing, feats, dropped, sg, churn, insights, model, settings, timings)
    return RunResult(
        settings=settings,
        manifest=manifest,
        customers=customers,
        segments=insights.segments,
        k_selection=sg.k_selection,
        decision=sg.segmenter.decision_,
        model=model,
        features=feats,
        insights=insights,
        embedding_sample=embedding,
        quarantine=quarantine_frame(ing),
        diagnostics=diagnostics,
        comparison=_comparison(sg.comparison),
    )


def observation_end_of(settings: Settings) -> _dt.datetime | None:
    end = settings.observation_end
    return _dt.datetime.fromisoformat(end) if end else None


def _with_churn_scores(feats: CustomerFeatures, res: ChurnResult | None) -> CustomerFeatures:
    """The features with each customer's churn probability beside them (a new value)."""
    if res is None:
        return feats
    return replace(feats, frame=feats.frame.merge(res.scores, on="customer_id", how="left"))


def _explain(
    feats: CustomerFeatures, sg: Segmented, settings: Settings, progress: Progress | None
) -> Insights:
    """Profiles, tests, drivers, personas and anomalies; segments carry their stability."""
    seg, frame = sg.segmenter, feats.frame
    insights = explain(
        frame,
        sg.X,
        seg.labels_,
        feats.numeric,
        feats.categorical,
        settings,
        centers=seg.centers_,
        log_likelihood=getattr(seg, "log_likelihood_", None),
        descriptive=[c for c in _descriptive_numeric(frame) if c not in feats.numeric],
        progress=(lambda d: progress("explain", d)) if progress else None,
    )
    segments = insights.segments
    if sg.stability is not None:
        st = sg.stability.segments.rename(columns={"jaccard": "stability_jaccard"})
        segments = segments.merge(
            st[["segment", "stability_jaccard", "unstable"]], on="segment", how="left"
        )
    if hasattr(seg, "segment_stability_"):
        segments = segments.assign(
            consensus_stability=[
                float(seg.segment_stability_[s]) if s >= 0 else float("nan")
                for s in segments["segment"]
            ]
        )
    return replace(insights, segments=segments)


def _score(
    feats: CustomerFeatures, sg: Segmented, insights: Insights, settings: Settings
) -> tuple[pd.DataFrame, list[str]]:
    """Each customer's segment, confidence, anomaly score and features; the segment names."""
    seg, frame, segments = sg.segmenter, feats.frame, insights.segments
    names = segments.loc[segments["segment"] >= 0, "segment_name"].tolist()
    scores = score_matrix(
        sg.X,
        seg.assigner(),
        names,
        frame["customer_id"],
        labels=seg.labels_,
        low_confidence=settings.clustering.low_confidence,
    )
    if hasattr(seg, "agreement_"):
        scores = scores.assign(agreement=seg.agreement_)
    customers = pd.concat(
        [
            scores,
            insights.anomalies.scores,
            frame.drop(columns=["customer_id"]).reset_index(drop=True),
        ],
        axis=1,
    )
    return customers, names


def _pictures(
    feats: CustomerFeatures, sg: Segmented, settings: Settings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The PCA sample for the scatter and the method's diagnostic curves for the report."""
    seg = sg.segmenter
    embedding = embedding_sample(sg.X, seg.labels_, feats.frame["customer_id"], settings.seed)
    diagnostics = cluster_diagnostics(seg)
    if sg.comparison is not None:
        rows = embedding.attrs["index"]
        diagnostics["method_labels"] = {
            name: s.labels_[rows] for name, s in sg.comparison.segmenters.items()
        }
    return embedding, diagnostics


def _comparison(c: Comparison | None) -> MethodComparison | None:
    """The comparison's tables without its fitted segmenters (a result holds values)."""
    if c is None:
        return None
    return MethodComparison(c.table, c.agreement, c.recommended, c.reason)


def _model(
    feats: CustomerFeatures,
    sg: Segmented,
    churn_res: ChurnResult | None,
    names: list[str],
    ing: Ingested,
    settings: Settings,
) -> SegmentationModel:
    """The saved model: preprocessing, assigner, churn model and what it was trained on."""
    meta = {
        "version": __version__,
        "config_hash": settings.hash(),
        "settings": settings.model_dump(mode="json"),
        "kinds": [i["kind"] for i in ing.inputs],
        "numeric": feats.numeric,
        "categorical": feats.categorical,
        "categories": feats.info.get("top_categories"),
        "clv_params": _clv_params(feats.info.get("clv")),
        "segment_names": names,
        "algorithm": sg.cfg.algorithm,
        # which data the model was trained on (a model file alone tells; predict prints it)
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "inputs": [
            {k: i.get(k) for k in ("path", "format", "kind", "sha256", "bytes")} for i in ing.inputs
        ],
    }
    churn_model = {"model": churn_res.model, "features": churn_res.features} if churn_res else None
    return SegmentationModel(sg.preprocessor, sg.segmenter.assigner(), meta, churn=churn_model)


def _manifest(
    ing: Ingested,
    feats: CustomerFeatures,
    dropped: dict[str, str],
    sg: Segmented,
    churn: dict[str, Any] | None,
    insights: Insights,
    model: SegmentationModel,
    settings: Settings,
    timings: dict[str, float],
) -> RunManifest:
    seg, cfg, comparison = sg.segmenter, sg.cfg, sg.comparison
    tests = insights.tests.tests
    log.info("rows %s; %d customers; features %s", ing.rows, len(feats.frame), feats.names)
    return RunManifest(
        version=__version__,
        created=model.meta["created"],
        rows=ing.rows,
        customers=len(feats.frame),
        k=int(seg.k_),
        metrics=sg.final_metrics,
        config=settings,
        config_hash=settings.hash(),
        timings=timings,
        inputs=ing.inputs,
        observation_end=feats.observation_end,
        features={
            "numeric": feats.numeric,
            "categorical": feats.categorical,
            "descriptive": [c for c in DESCRIPTIVE if c in feats.frame],
            "dropped": dropped,
            "columns": [c for c in feats.frame.columns if c != "customer_id"],
        },
        customers_detail={k: v for k, v in feats.info.items() if k != "clv"},
        clv=feats.info.get("clv"),
        churn=churn,
        preprocessing=sg.preprocessing,
        explain={
            "tests": len(tests),
            "meaningful_differences": tests.loc[tests["meaningful"], "feature"].tolist(),
            "drivers_fidelity": insights.drivers.fidelity if insights.drivers else None,
            "anomalies_flagged": insights.anomalies.flagged,
            "anomaly_signals": insights.anomalies.signals,
            "headline": insights.headline,
        },
        selection={
            "algorithm": cfg.algorithm,
            "compared": comparison.reason if comparison else None,
            "k_range": [settings.clustering.k_min, settings.clustering.k_max],
            "k_tried": [int(k) for k in sg.k_selection["k"]],
            "fixed_k": settings.clustering.k,
            "votes": seg.decision_.votes,
            "reason": seg.decision_.reason,
        },
        warnings=_warnings(dropped, churn, sg.final_metrics),
    )


def _warnings(
    dropped: dict[str, str], churn: dict[str, Any] | None, metrics: dict[str, Any]
) -> list[str]:
    """What a reader of the run should know before acting on it, in one place."""
    out = [f"feature {name!r} was not used: {why}" for name, why in dropped.items()]
    if churn and churn.get("skipped"):
        out.append(f"churn was not modelled: {churn['skipped']}")
    if metrics.get("stability_note"):
        out.append(str(metrics["stability_note"]))
    if metrics.get("unstable_segments"):
        listed = ", ".join(map(str, metrics["unstable_segments"]))
        out.append(f"segment(s) {listed} did not hold together when refitted on samples")
    if metrics.get("noise_share", 0) > 0.2:
        out.append(f"{metrics['noise_share']:.0%} of customers are outliers (no segment)")
    return out


def _churn(
    ing: Ingested,
    feats: CustomerFeatures,
    settings: Settings,
    timings: dict[str, float],
    progress: Progress | None,
) -> tuple[dict[str, Any] | None, ChurnResult | None]:
    """The churn stage: the evaluation for the manifest, and the model with its scores."""
    with stage("churn", timings, progress):
        tx = ing.transactions
        if tx is None or not settings.churn.enabled or feats.observation_end is None:
            return None, None
        try:
            res = churn_risk(
                tx, feats.frame, feats.observation_end, settings.churn, seed=settings.seed
            )
        except SegmintError as exc:
            return {"skipped": str(exc)}, None
        return {**res.metrics, "calibration": res.calibration.to_dict("records")}, res


def _clv_params(report: dict | None) -> dict | None:
    """The part of the CLV report that rebuilds the models for ``predict``."""
    if not report or "bgnbd" not in report:
        return None
    return {k: {"params": report[k]["params"]} for k in ("bgnbd", "gamma_gamma")}


def _descriptive_numeric(frame: pd.DataFrame) -> list[str]:
    """Numeric columns worth profiling beside the segmentation features."""
    skip = {"r_score", "f_score", "m_score", "rfm_code"}
    return [
        c
        for c in frame.columns
        if c != "customer_id"
        and c not in skip
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
