"""Hierarchical (agglomerative) segmentation: Ward, average or complete linkage.

Linkage needs every pairwise distance — O(n²) memory (measured: 30k customers = 38 s and
7 GB) — so above ``max_fit_sample`` customers the tree is built on a random sample, and every
customer (sampled or not) is then assigned to the nearest segment centre (the mean of the
segment's sampled customers). The tree is cut at each candidate k (scipy ``fcluster``), so
one linkage serves the whole k sweep, and k is chosen by the same vote as k-means
(``evaluate.select_k``). The linkage matrix is kept for the dendrogram.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.utils._param_validation import Interval, StrOptions

from ..evaluate import metrics
from ..evaluate.select_k import Decision, choose_k
from .base import (
    K_CONSTRAINTS,
    Candidates,
    Segmenter,
    candidate_row,
    order_by_size,
    profile_ks,
    relabel,
    sample_rows,
    segment_means,
)


class HierarchicalSegmenter(Segmenter):
    """Agglomerative segmentation with automatic k (see module doc).

    Parameters
    ----------
    linkage : {"ward", "average", "complete"}, default="ward"
    k, k_min, k_max : as for k-means
    max_fit_sample : int, default=10,000
        Customers the tree is built on.
    silhouette_sample, bootstrap, min_segment_share, random_state : as for k-means

    Attributes
    ----------
    labels_, k_, centers_, inertia_, tss_, selection_, decision_ : see ``cluster.base``
    linkage_ : ndarray, shape (m - 1, 4)
        scipy linkage matrix of the fitted sample (for the dendrogram).
    fitted_on_sample_ : bool
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        **K_CONSTRAINTS,
        "linkage": [StrOptions({"ward", "average", "complete"})],
        "max_fit_sample": [Interval(Integral, 10, 100_000, closed="both")],
    }

    def __init__(
        self,
        *,
        linkage: str = "ward",
        k: int | None = None,
        k_min: int = 2,
        k_max: int = 10,
        max_fit_sample: int = 10_000,
        silhouette_sample: int = 10_000,
        bootstrap: int = 200,
        min_segment_share: float = 0.005,
        random_state: int = 0,
    ) -> None:
        self.linkage = linkage
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.max_fit_sample = max_fit_sample
        self.silhouette_sample = silhouette_sample
        self.bootstrap = bootstrap
        self.min_segment_share = min_segment_share
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, y: Any = None, *, progress: Callable[[str], None] | None = None
    ) -> HierarchicalSegmenter:
        self._validate_params()
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        rng = np.random.default_rng(self.random_state)
        fit_idx = sample_rows(n, self.max_fit_sample, rng)
        sil_idx = sample_rows(n, self.silhouette_sample, rng)
        if progress:
            progress(f"{self.linkage} linkage on {len(fit_idx):,} customers")
        Z = linkage(X[fit_idx].astype(np.float64), method=self.linkage, metric="euclidean")
        krange = profile_ks(self, X[fit_idx], n)
        ks = krange.ks
        tss = metrics.total_sum_of_squares(X)
        cands = Candidates([], [])
        centers: dict[int, np.ndarray] = {}
        for k in ks:
            cut = fcluster(Z, t=k, criterion="maxclust") - 1
            kk = int(cut.max()) + 1  # ties in the tree can give fewer clusters than asked
            c = segment_means(X[fit_idx], cut.astype(np.int32), kk)
            labels, inertia = metrics.assign(X, c)
            centers[k] = c
            cands.sil_labels.append(labels[sil_idx])
            row = candidate_row(X, labels.astype(np.int32), kk, tss, inertia)
            row["k"] = k
            cands.rows.append(row)
        table = cands.table(X[sil_idx], self.bootstrap, self.random_state)
        decision = choose_k(
            table, min_segment_share=self.min_segment_share, fixed=krange.fixed, note=krange.note
        )
        k = decision.k
        labels, inertia = metrics.assign(X, centers[k])
        kk = len(centers[k])
        remap = order_by_size(labels.astype(np.int32), kk)
        table["chosen"] = table["k"] == k
        self.labels_ = relabel(labels, remap)
        self.centers_ = centers[k][np.argsort(remap)]
        self.k_ = kk
        self.inertia_ = inertia
        self.tss_ = tss
        self.selection_ = table
        self.decision_: Decision = decision
        self.linkage_ = Z
        self.fitted_on_sample_ = len(fit_idx) < n
        self.n_features_in_ = X.shape[1]
        return self
