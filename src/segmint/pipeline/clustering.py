"""The preprocess and cluster stages of a segmentation run: the fitted transformer and
segmenter, the final quality metrics, stability (overall, per segment and per k), and the
pictures the report draws (PCA sample, method diagnostics). Returns new values; a fitted
segmenter's attributes are read, never changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from segmint import preprocess
from segmint.cluster import ALGORITHMS, make_segmenter
from segmint.cluster.registry import refit_factory, refit_settings
from segmint.config import Settings
from segmint.evaluate import metrics
from segmint.evaluate.stability import bootstrap_stability, stability_per_k
from segmint.features import CustomerFeatures
from segmint.pipeline.compare import Comparison, compare_methods
from segmint.pipeline.stages import Progress, stage

# methods cheap enough to refit for every candidate k (two pairs of fits per k on ≤ 3,000)
PER_K_STABILITY = {"kmeans", "minibatch", "bisecting", "ward", "average", "complete", "gmm"}


@dataclass
class Segmented:
    preprocessor: Any
    preprocessing: dict[str, Any]
    X: np.ndarray
    segmenter: Any
    cfg: Any
    comparison: Comparison | None
    final_metrics: dict[str, Any]
    stability: Any
    k_selection: pd.DataFrame  # the segmenter's table, with stability per k when measured


def segment_features(
    feats: CustomerFeatures,
    settings: Settings,
    timings: dict[str, float],
    progress: Progress | None,
) -> Segmented:
    """The preprocess and cluster stages: the fitted preprocessor and segmenter, with metrics."""
    with stage("preprocess", timings, progress):
        p = settings.preprocess
        pre = preprocess.make_preprocessor(
            feats.numeric,
            feats.categorical,
            skew_threshold=p.log_skew_threshold,
            iqr_factor=p.clip_iqr,
            max_categories=p.max_categories,
        )
        X = preprocess.fit_transform(
            pre, feats.frame, feats.numeric, feats.categorical, seed=settings.seed
        )
        prep_report = preprocess.preprocessing_report(
            pre, feats.frame, feats.numeric, feats.categorical
        )
    with stage("cluster", timings, progress):
        cfg = settings.clustering
        comparison = None
        groups = preprocess.categorical_groups(pre, len(feats.numeric))
        if cfg.algorithm == "all":
            comparison = compare_methods(
                X,
                cfg,
                list(ALGORITHMS),
                seed=settings.seed,
                categorical_groups=groups,
                progress=(lambda d: progress("cluster", d)) if progress else None,
            )
            seg = comparison.segmenters[comparison.recommended]
            cfg = cfg.model_copy(update={"algorithm": comparison.recommended})
        else:
            seg = make_segmenter(cfg, settings.seed, categorical_groups=groups)
            seg.fit(X, progress=(lambda d: progress("cluster", d)) if progress else None)
        labels = seg.labels_
        final_metrics = final_metrics_of(X, seg, settings, cfg.algorithm)
        stability = None
        k_selection = seg.selection_
        if settings.clustering.stability_runs:
            if progress:
                progress("cluster", "stability")
            stability = bootstrap_stability(
                refit_factory(cfg, settings.seed, seg),
                X,
                labels,
                seg.k_,
                runs=settings.clustering.stability_runs,
                sample=settings.clustering.stability_sample,
                seed=settings.seed,
            )
            if np.isfinite(stability.ari):  # undefined on very few customers: see note
                final_metrics["stability_ari"] = round(stability.ari, 6)
            if stability.note:
                final_metrics["stability_note"] = stability.note
            ks = seg.selection_["k"].astype(int).tolist()
            if len(ks) > 1 and cfg.algorithm in PER_K_STABILITY:
                if progress:
                    progress("cluster", "stability per k")
                per_k = stability_per_k(
                    lambda k, s: make_segmenter(
                        refit_settings(cfg, k=k, n_init=1), s, categorical_groups=groups
                    ),
                    X,
                    ks,
                    runs=2,
                    sample=min(settings.clustering.stability_sample, 3000),
                    seed=settings.seed,
                )
                k_selection = k_selection.assign(stability=k_selection["k"].map(per_k))
            final_metrics["unstable_segments"] = stability.segments.loc[
                stability.segments["unstable"], "segment"
            ].tolist()
    return Segmented(
        pre, prep_report, X, seg, cfg, comparison, final_metrics, stability, k_selection
    )


def cluster_diagnostics(seg: Any) -> dict[str, Any]:
    """Method-specific curves for the report: BIC (mixtures), the k-distance curve (DBSCAN,
    HDBSCAN) and the top of the dendrogram (hierarchical)."""
    out: dict[str, Any] = {}
    table = seg.selection_
    if "bic" in table:
        out["bic"] = table[["k", "bic"]].to_dict("list")
    if hasattr(seg, "kdist_"):
        kd = seg.kdist_
        idx = np.unique(np.linspace(0, len(kd) - 1, min(len(kd), 400)).astype(int))
        out["kdist"] = {"rank": idx.tolist(), "distance": kd[idx].tolist(), "eps": seg.eps_}
    if hasattr(seg, "linkage_"):
        out["linkage"] = seg.linkage_
        out["fitted_on_sample"] = bool(seg.fitted_on_sample_)
    if hasattr(seg, "low_confidence_count_"):
        out["low_confidence"] = seg.low_confidence_count_
    return out


def final_metrics_of(X: np.ndarray, seg: Any, settings: Settings, algorithm: str) -> dict[str, Any]:
    """Quality of the final segmentation; noise customers (``-1``) are left out of the
    criteria and reported as a share."""
    labels = seg.labels_
    ok = np.flatnonzero(labels >= 0)
    k = seg.k_
    rng = np.random.default_rng(settings.seed + 7)
    size = settings.clustering.silhouette_sample
    idx = ok if len(ok) <= size else np.sort(rng.choice(ok, size, replace=False))
    sil = metrics.sampled_silhouette(
        X, labels, idx, bootstrap=settings.clustering.bootstrap, seed=settings.seed
    )
    inertia = float(seg.inertia_)
    return {
        "algorithm": algorithm,
        "silhouette": round(sil.mean, 6),
        "silhouette_ci95": [round(sil.low, 6), round(sil.high, 6)],
        "silhouette_sample": sil.n,
        "calinski_harabasz": round(
            metrics.calinski_harabasz_from_inertia(seg.tss_, inertia, len(ok), k), 6
        ),
        "davies_bouldin": round(metrics.davies_bouldin(X[ok], labels[ok]), 6),
        "inertia": inertia,
        "noise_customers": int(len(labels) - len(ok)),
        "noise_share": round(1 - len(ok) / max(len(labels), 1), 6),
    }


def embedding_sample(
    X: np.ndarray, labels: np.ndarray, ids: pd.Series, seed: int, size: int = 5000
) -> pd.DataFrame:
    """PCA coordinates (3 components) of a sample of customers, for the report's scatter."""
    from sklearn.decomposition import PCA

    n = len(X)
    rng = np.random.default_rng(seed + 11)
    idx = np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))
    n_comp = min(3, X.shape[1])
    pca = PCA(n_components=n_comp, random_state=seed).fit(X[idx] if n > 50_000 else X)
    Z = pca.transform(X[idx])
    out = pd.DataFrame(Z, columns=[f"pc{i + 1}" for i in range(n_comp)])
    for i in range(n_comp, 3):
        out[f"pc{i + 1}"] = 0.0
    out["segment"] = labels[idx]
    out["customer_id"] = ids.to_numpy()[idx]
    out.attrs["explained"] = [float(v) for v in pca.explained_variance_ratio_]
    out.attrs["index"] = idx
    return out
