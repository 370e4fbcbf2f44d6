"""Run every clustering method on the same features, compare them, and recommend one.

Each method of the registry is fitted on the same preprocessed matrix with the same
settings (automatic k where the method chooses k). For each: k, sampled silhouette (the
same customers for every method; a noise customer counts 0, as no segment explains it —
leaving noise out would flatter density methods, which can drop the hardest customers),
Calinski–Harabasz and Davies–Bouldin (noise excluded),
bootstrap stability (adjusted Rand index over refits, ``evaluate.stability``), noise share,
segment sizes and runtime. The agreement matrix is the adjusted Rand index between every
two methods' labels on a common sample.

**The recommendation rule**

1. *Eligible*: the method ran; at most ``MAX_NOISE`` (20%) of customers are noise; the
   smallest segment holds at least ``MIN_SHARE`` (2%; average and complete linkage like to
   split off a handful of extreme customers, which scores a high silhouette and tells
   marketing nothing) or ``min_segment_share`` if larger; stability ARI ≥ ``MIN_STABILITY``
   (0.7) and no segment unstable (``evaluate.stability``). If no method passes, the
   stability conditions are dropped, then all that ran.
2. Among the eligible, the highest sampled silhouette wins …
3. … unless another eligible method is within ``SILHOUETTE_TIE`` (0.02) of it and more
   stable: then the most stable of those near-ties wins (a segmentation that survives
   resampling is worth more to a campaign than a hair of separation). Remaining ties go to
   the faster method.
4. Two segments give marketing little to act on (the same stance as ``select_k``): a
   method with k = 2 is recommended only when no eligible method has k ≥ 3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from segmint.config import Clustering
from segmint.evaluate import metrics
from segmint.evaluate.stability import bootstrap_stability
from segmint.exceptions import InputError, SegmintError

MAX_NOISE = 0.2
MIN_STABILITY = 0.7
SILHOUETTE_TIE = 0.02
MIN_SHARE = 0.02


@dataclass
class Comparison:
    """``table``: one row per method; ``agreement``: methods × methods ARI; ``recommended``
    and ``reason``; ``segmenters``: the fitted segmenters by name (failed ones absent)."""

    table: pd.DataFrame
    agreement: pd.DataFrame
    recommended: str
    reason: str
    segmenters: dict[str, Any] = field(default_factory=dict, repr=False)


def compare_methods(
    X: np.ndarray,
    config: Clustering,
    methods: list[str],
    *,
    seed: int = 0,
    stability_runs: int = 3,
    categorical_groups: list[list[int]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Fit every method in ``methods`` on ``X`` and apply the rule of the module doc."""
    from segmint.cluster.base import require_customers
    from segmint.cluster.registry import make_segmenter, refit_factory

    rng = np.random.default_rng(seed + 17)
    n = len(X)
    require_customers(n)  # one clear refusal rather than the same one from every method
    common = (
        np.arange(n)
        if n <= config.silhouette_sample
        else np.sort(rng.choice(n, config.silhouette_sample, replace=False))
    )
    rows, fitted = [], {}
    for name in methods:
        if progress:
            progress(f"compare: {name}")
        cfg = config.model_copy(update={"algorithm": name})
        t0 = time.perf_counter()
        try:
            seg = make_segmenter(cfg, seed, categorical_groups=categorical_groups).fit(X)
        except SegmintError as exc:
            rows.append({"method": name, "error": str(exc)})
            continue
        seconds = time.perf_counter() - t0
        fitted[name] = seg
        labels = seg.labels_
        ok = labels[common] >= 0
        sil = None
        if len(np.unique(labels[common][ok])) > 1:
            vals = np.zeros(len(common))  # noise customers count 0: no segment explains them
            vals[ok] = metrics.silhouette_values(X[common[ok]], labels[common[ok]])
            sil = metrics.bootstrap_mean(vals, bootstrap=config.bootstrap, seed=seed)
        st = bootstrap_stability(
            refit_factory(cfg, seed, seg),
            X,
            labels,
            seg.k_,
            runs=stability_runs,
            sample=config.stability_sample,
            seed=seed,
        )
        valid = labels >= 0
        sizes = np.bincount(labels[valid], minlength=seg.k_) / n
        rows.append(
            {
                "method": name,
                "k": seg.k_,
                "silhouette": sil.mean if sil else float("nan"),
                "silhouette_low": sil.low if sil else float("nan"),
                "silhouette_high": sil.high if sil else float("nan"),
                "calinski_harabasz": metrics.calinski_harabasz_from_inertia(
                    seg.tss_, seg.inertia_, int(valid.sum()), seg.k_
                ),
                "davies_bouldin": metrics.davies_bouldin(X[valid], labels[valid]),
                "stability_ari": st.ari,
                "unstable_segments": int(st.segments["unstable"].sum()),
                "noise_share": float(1 - valid.mean()),
                "min_segment_share": float(sizes.min()),
                "segment_sizes": " / ".join(f"{s:.0%}" for s in sizes),
                "seconds": round(seconds, 3),
                "error": "",
            }
        )
    table = pd.DataFrame(rows)
    if not fitted:
        raise InputError(
            "no clustering method could segment these customers: "
            + "; ".join(f"{r['method']}: {r['error']}" for r in rows)
        )
    names = list(fitted)
    A = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            A[i, j] = A[j, i] = adjusted_rand_score(
                fitted[a].labels_[common], fitted[b].labels_[common]
            )
    agreement = pd.DataFrame(A, index=names, columns=names)
    best, reason = recommend(table, config.min_segment_share)
    table["recommended"] = table["method"] == best
    return Comparison(table, agreement, best, reason, fitted)


def recommend(table: pd.DataFrame, min_segment_share: float) -> tuple[str, str]:
    """The rule of the module doc; returns (method, reason)."""
    ran = table[table["error"] == ""]
    floor = max(MIN_SHARE, min_segment_share)
    base = ran[(ran["noise_share"] <= MAX_NOISE) & (ran["min_segment_share"] >= floor)]
    pool = base[(base["stability_ari"] >= MIN_STABILITY) & (base["unstable_segments"] == 0)]
    note = ""
    if pool.empty:
        pool = base
        note = (
            f" No method reached stability {MIN_STABILITY} without an unstable segment, so "
            "stability was not required."
        )
    if pool.empty:
        pool = ran
        note = " No method met the noise and segment-size conditions, so all were considered."
    if (pool["k"] >= 3).any():
        pool = pool[pool["k"] >= 3]
    pool = pool.sort_values(["silhouette", "seconds"], ascending=[False, True])
    top = pool.iloc[0]
    near = pool[pool["silhouette"] >= top["silhouette"] - SILHOUETTE_TIE]
    pick = near.sort_values(["stability_ari", "seconds"], ascending=[False, True]).iloc[0]
    reason = (
        f"{pick['method']} (k = {int(pick['k'])}): highest sampled silhouette "
        f"({pick['silhouette']:.3f}) among {len(pool)} eligible method(s)"
        if pick["method"] == top["method"]
        else f"{pick['method']} (k = {int(pick['k'])}): within {SILHOUETTE_TIE} of the best "
        f"silhouette ({top['method']}, {top['silhouette']:.3f} vs {pick['silhouette']:.3f}) "
        f"and more stable (ARI {pick['stability_ari']:.3f} vs {top['stability_ari']:.3f})"
    )
    reason += f"; stability ARI {pick['stability_ari']:.2f}, noise {pick['noise_share']:.0%}."
    return str(pick["method"]), reason + note
