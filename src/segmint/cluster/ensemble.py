"""Consensus ensemble: many base segmentations combined into one.

Base segmentations: every method in ``methods`` (default k-means, Gaussian mixture, Ward)
× k in {k₀ − 1, k₀, k₀ + 1} (k₀ chosen by k-means' vote unless ``k`` is fixed) × ``resamples``
random 80% subsamples. Each is fitted on its subsample of an evaluation sample of at most
``sample`` customers and labels the whole evaluation sample through its own ``predict``.

The **co-association** matrix holds, for every two sampled customers, the share of base
segmentations that put them together (O(sample²) memory: 2,000 customers = 16 MB). The
final segments are an average-linkage tree on ``1 − co-association`` cut at the k (among the
candidates) with the best silhouette on that distance — the smallest such k when several are
within 0.01 (a k₀ + 1 base often splits a group differently each time, which the consensus
barely penalises); every customer is then assigned to the nearest segment centre, as a saved
model will do.

Per customer, **agreement** is the share of base segmentations that, mapped to the final
segments by majority, place the customer in its final segment (computed for everyone, from
the base models' predictions on all rows). Per segment, **stability** is the mean
co-association of its sampled members with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.metrics import silhouette_score
from sklearn.utils._param_validation import Interval

from ..evaluate import metrics
from ..evaluate.select_k import MIN_SEGMENT_CUSTOMERS, Decision, max_segments
from ..exceptions import InputError
from .base import (
    Candidates,
    Segmenter,
    candidate_ks,
    candidate_row,
    order_by_size,
    relabel,
    sample_rows,
    segment_means,
)

TIE = 0.01


class EnsembleSegmenter(Segmenter):
    """Co-association consensus of several methods, k values and resamples (module doc).

    Attributes
    ----------
    labels_, k_, centers_, inertia_, tss_, selection_, decision_ : see ``cluster.base``
    agreement_ : ndarray, shape (n,)
        Per-customer agreement of the base segmentations with the final one.
    segment_stability_ : ndarray, shape (k,)
        Mean within-segment co-association.
    base_count_ : int
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "methods": [list, tuple],
        "resamples": [Interval(Integral, 1, 100, closed="both")],
        "k": [Interval(Integral, 2, None, closed="left"), None],
        "k_min": [Interval(Integral, 2, None, closed="left")],
        "k_max": [Interval(Integral, 2, None, closed="left")],
        "sample": [Interval(Integral, 50, 10_000, closed="both")],
        "share": [Interval(Real, 0.1, 1.0, closed="right")],
        "min_segment_share": [Interval(Real, 0, 0.5, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        methods: tuple[str, ...] = ("kmeans", "gmm", "ward"),
        resamples: int = 5,
        k: int | None = None,
        k_min: int = 2,
        k_max: int = 10,
        sample: int = 2000,
        share: float = 0.8,
        min_segment_share: float = 0.005,
        random_state: int = 0,
    ) -> None:
        self.methods = methods
        self.resamples = resamples
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.sample = sample
        self.share = share
        self.min_segment_share = min_segment_share
        self.random_state = random_state

    def _base(self, method: str, k: int, seed: int) -> Any:
        from ..config import Clustering
        from .registry import make_segmenter

        cfg = Clustering(algorithm=method, k=k, n_init=2, stability_runs=0, bootstrap=20)
        return make_segmenter(cfg, seed)

    def fit(
        self, X: np.ndarray, y: Any = None, *, progress: Callable[[str], None] | None = None
    ) -> EnsembleSegmenter:
        self._validate_params()
        unknown = [m for m in self.methods if m in {"ensemble", "all"}]
        if unknown:
            raise InputError(f"the ensemble cannot contain {unknown}", expected="base methods")
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        rng = np.random.default_rng(self.random_state)
        ev = sample_rows(n, self.sample, rng)
        Xe = X[ev]
        m = len(ev)
        krange = candidate_ks(self, m - 1, n)
        if self.k:
            k0 = self.k
        else:
            from .kmeans import KMeansSegmenter

            k0 = (
                KMeansSegmenter(
                    k_min=self.k_min,
                    k_max=max(krange.ks),
                    min_segment_share=self.min_segment_share,
                    random_state=self.random_state,
                    bootstrap=20,
                )
                .fit(X)
                .k_
            )
        top_k = max_segments(n)
        ks = sorted({kk for kk in (k0 - 1, k0, k0 + 1) if 2 <= kk <= top_k} if not self.k else {k0})
        C = np.zeros((m, m), dtype=np.float32)
        bases: list[Any] = []
        seed = self.random_state
        for method in self.methods:
            for kk in ks:
                if progress:
                    progress(f"ensemble: {method} k={kk}")
                for _ in range(self.resamples):
                    seed += 1
                    size = min(m, max(int(self.share * m), kk + 1, MIN_SEGMENT_CUSTOMERS * kk))
                    sub = np.sort(rng.choice(m, size, replace=False))
                    try:
                        base = self._base(method, kk, seed).fit(Xe[sub])
                    except InputError:
                        continue
                    lab = base.predict(Xe)
                    same = (lab[:, None] == lab[None, :]) & (lab[:, None] >= 0)
                    C += same
                    bases.append(base)
        if not bases:
            raise InputError("no base segmentation could be fitted", expected="more customers")
        C /= len(bases)
        np.fill_diagonal(C, 1.0)
        D = 1.0 - C
        Z = linkage(squareform(D, checks=False), method="average")
        rows, cuts, sil_labels = [], {}, []
        sil_idx = sample_rows(n, 5000, rng)
        tss = metrics.total_sum_of_squares(X)
        for kk in ks:
            cut = (fcluster(Z, t=kk, criterion="maxclust") - 1).astype(np.int32)
            got = int(cut.max()) + 1
            if got < 2:
                continue
            cuts[kk] = cut
            centers = segment_means(Xe, cut, got)
            labels_all, inertia = metrics.assign(X, centers)
            row = candidate_row(X, labels_all.astype(np.int32), got, tss, inertia)
            row["k"] = kk
            row["consensus_silhouette"] = float(silhouette_score(D, cut, metric="precomputed"))
            rows.append(row)
            sil_labels.append(labels_all.astype(np.int32)[sil_idx])
        if not rows:
            raise InputError("the consensus tree gave fewer than two segments")
        cands = Candidates(rows, sil_labels)
        table = cands.table(X[sil_idx], bootstrap=50, seed=self.random_state)
        top = table["consensus_silhouette"].max()
        near = table[table["consensus_silhouette"] >= top - TIE]
        best = near.sort_values("k").iloc[0]  # parsimony: the fewest segments among near-ties
        k = int(best["k"])
        table["chosen"] = table["k"] == k
        cut = cuts[k]
        kk = int(cut.max()) + 1
        centers = segment_means(Xe, cut, kk)
        labels, inertia = metrics.assign(X, centers)
        labels = labels.astype(np.int32)
        remap = order_by_size(labels, kk)
        labels = relabel(labels, remap)
        centers = centers[np.argsort(remap)]
        ev_final = labels[ev]
        # per-customer agreement: each base, mapped to the final segments by majority
        agree = np.zeros(n)
        for base in bases:
            lab_ev = base.predict(Xe)
            mapping = {}
            for b in np.unique(lab_ev[lab_ev >= 0]):
                mapping[int(b)] = int(np.bincount(ev_final[lab_ev == b], minlength=kk).argmax())
            lab_all = base.predict(X)
            mapped = np.array([mapping.get(int(v), -2) for v in range(-1, lab_all.max() + 1)])
            agree += mapped[lab_all + 1] == labels
        stab = np.array(
            [
                float(C[np.ix_(ev_final == s, ev_final == s)].mean())
                if (ev_final == s).any()
                else 0
                for s in range(kk)
            ]
        )
        self.labels_ = labels
        self.centers_ = centers
        self.k_ = kk
        self.inertia_ = inertia
        self.tss_ = tss
        self.agreement_ = agree / len(bases)
        self.segment_stability_ = stab
        self.base_count_ = len(bases)
        self.coassociation_ = C
        self.selection_ = table
        self.decision_ = Decision(
            k,
            {"consensus": k},
            f"Consensus of {len(bases)} base segmentations ({', '.join(self.methods)} × "
            f"k = {', '.join(map(str, ks))} × {self.resamples} resamples): k = {k} has the "
            f"best silhouette on the co-association distance ({best['consensus_silhouette']:.3f})."
            + (f" {krange.note}" if krange.note else ""),
        )
        self.n_features_in_ = X.shape[1]
        return self
