"""Hierarchical (agglomerative) segmentation: Ward, average or complete linkage.

Linkage needs every pairwise distance — O(n²) memory (measured: 30k customers = 38 s and
7 GB) — so above ``max_fit_sample`` customers the tree is built on a random sample, and every
customer (sampled or not) is then assigned to the nearest segment centre (the mean of the
segment's sampled customers). The tree is cut at each candidate k (scipy ``fcluster``), so
one linkage serves the whole k sweep (``cluster.sweep``), and k is chosen by the same vote
as k-means (``evaluate.select_k``). The linkage matrix is kept for the dendrogram.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.utils._param_validation import Interval, StrOptions

from segmint.cluster.base import Progress, say, segment_means
from segmint.cluster.sweep import Candidate, Final, KSweepSegmenter, Sweep
from segmint.evaluate import metrics


class HierarchicalSegmenter(KSweepSegmenter):
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
        **KSweepSegmenter._parameter_constraints,
        "linkage": [StrOptions({"ward", "average", "complete"})],
        "max_fit_sample": [Interval(Integral, 10, 100_000, closed="both")],
    }
    _sample_param = "max_fit_sample"

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

    def _prepare(self, fit_rows: np.ndarray, progress: Progress) -> np.ndarray:
        """One linkage tree for every candidate k."""
        say(progress, f"{self.linkage} linkage on {len(fit_rows):,} customers")
        return linkage(fit_rows.astype(np.float64), method=self.linkage, metric="euclidean")

    def _fit_k(self, sweep: Sweep, k: int) -> Candidate:
        cut = fcluster(sweep.prepared, t=k, criterion="maxclust") - 1
        formed = int(cut.max()) + 1  # ties in the tree can give fewer clusters than asked
        centers = segment_means(sweep.fit_rows, cut.astype(np.int32), formed)
        labels, inertia = metrics.assign(sweep.X, centers)
        return Candidate(centers, labels.astype(np.int32), k=formed, inertia=inertia)

    def _finish(self, sweep: Sweep, k: int, model: Any) -> Final:
        labels, inertia = metrics.assign(sweep.X, model)
        return Final(labels.astype(np.int32), len(model), model, inertia)

    def _keep(self, sweep: Sweep, final: Final, order: np.ndarray) -> None:
        self.linkage_ = sweep.prepared
        self.fitted_on_sample_ = len(sweep.fit_idx) < len(sweep.X)
