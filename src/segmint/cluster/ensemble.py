"""Consensus ensemble: many base segmentations combined into one.

Base segmentations: every segmenter in ``base_segmenters`` × k in {k₀ − 1, k₀, k₀ + 1}
(k₀ chosen by the ``pilot`` segmenter's own sweep unless ``k`` is fixed) × ``resamples``
random 80% subsamples. Each is an unfitted copy of its base (``sklearn.base.clone``) with its
k and seed set, fitted on its subsample of an evaluation sample of at most ``sample``
customers, and labels the whole evaluation sample through its own ``predict``. The ensemble
is given its bases; it does not know the registry (``cluster.registry.make_segmenter`` passes
k-means, the Gaussian mixture and Ward, and k-means as the pilot).

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

from numbers import Integral, Real
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.base import clone
from sklearn.metrics import silhouette_score
from sklearn.utils._param_validation import HasMethods, Interval

from segmint.cluster.base import (
    Progress,
    Segmenter,
    candidate_ks,
    sample_rows,
    say,
    segment_means,
)
from segmint.cluster.candidates import Candidates, candidate_row
from segmint.evaluate import metrics
from segmint.evaluate.select_k import MIN_SEGMENT_CUSTOMERS, Decision, max_segments
from segmint.exceptions import InputError

TIE = 0.01


def with_params(seg: Any, **params: Any) -> Any:
    """An unfitted copy of ``seg`` with those of ``params`` it accepts set."""
    copy = clone(seg)
    accepted = copy.get_params(deep=False)
    return copy.set_params(**{name: v for name, v in params.items() if name in accepted})


class EnsembleSegmenter(Segmenter):
    """Co-association consensus of several methods, k values and resamples (module doc).

    Parameters
    ----------
    base_segmenters : list of (str, segmenter)
        The base methods, named, unfitted; each base segmentation is a copy with its ``k``
        and ``random_state`` set (when it takes them).
    pilot : segmenter or None, default=None
        Chooses k₀ by its own sweep when ``k`` is not fixed (its ``k_min``, ``k_max``,
        ``min_segment_share`` and ``random_state`` are the ensemble's); None: the first base.
    resamples, k, k_min, k_max, sample, share, min_segment_share, random_state
        See the module doc.

    Attributes
    ----------
    labels_, k_, centers_, inertia_, tss_, selection_, decision_ : see ``cluster.base``
    agreement_ : ndarray, shape (n,)
        Per-customer agreement of the base segmentations with the final one.
    segment_stability_ : ndarray, shape (k,)
        Mean within-segment co-association.
    base_count_ : int
    coassociation_ : ndarray, shape (m, m)
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "base_segmenters": [list],
        "pilot": [HasMethods(["fit", "set_params"]), None],
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
        base_segmenters: list[tuple[str, Any]],
        pilot: Any = None,
        resamples: int = 5,
        k: int | None = None,
        k_min: int = 2,
        k_max: int = 10,
        sample: int = 2000,
        share: float = 0.8,
        min_segment_share: float = 0.005,
        random_state: int = 0,
    ) -> None:
        self.base_segmenters = base_segmenters
        self.pilot = pilot
        self.resamples = resamples
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.sample = sample
        self.share = share
        self.min_segment_share = min_segment_share
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None, *, progress: Progress = None) -> Self:
        """Fit the bases, build the consensus, cut it at the best k (module doc)."""
        self._validate_params()
        self._check_bases()
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        rng = np.random.default_rng(self.random_state)
        ev = sample_rows(n, self.sample, rng)
        Xe = X[ev]
        krange = candidate_ks(self, len(ev) - 1, n)
        k0 = self.k or self._pilot_k(X, max(krange.ks))
        top_k = max_segments(n)
        ks = sorted({kk for kk in (k0 - 1, k0, k0 + 1) if 2 <= kk <= top_k} if not self.k else {k0})
        C, bases = self._coassociation(Xe, ks, rng, progress)
        D = 1.0 - C
        tss = metrics.total_sum_of_squares(X)
        table, cuts = self._cuts(X, Xe, D, ks, tss, rng)
        top = table["consensus_silhouette"].max()
        near = table[table["consensus_silhouette"] >= top - TIE]
        best = near.sort_values("k").iloc[0]  # parsimony: the fewest segments among near-ties
        k = int(best["k"])
        table["chosen"] = table["k"] == k
        kk = int(cuts[k].max()) + 1
        centers = segment_means(Xe, cuts[k], kk)
        labels, inertia = metrics.assign(X, centers)
        labels, order = self._by_size(labels.astype(np.int32), kk)
        names = ", ".join(name for name, _ in self.base_segmenters)
        decision = Decision(
            k,
            {"consensus": k},
            f"Consensus of {len(bases)} base segmentations ({names} × "
            f"k = {', '.join(map(str, ks))} × {self.resamples} resamples): k = {k} has the "
            f"best silhouette on the co-association distance ({best['consensus_silhouette']:.3f})."
            + (f" {krange.note}" if krange.note else ""),
        )
        self._set_fitted(
            labels=labels,
            k=kk,
            centers=centers[order],
            inertia=inertia,
            tss=tss,
            selection=table,
            decision=decision,
            n_features=X.shape[1],
        )
        self.agreement_ = _agreement(bases, X, Xe, labels, labels[ev], kk)
        self.segment_stability_ = _stability(C, labels[ev], kk)
        self.base_count_ = len(bases)
        self.coassociation_ = C
        return self

    def _check_bases(self) -> None:
        """Refuse bases that are not (name, segmenter) pairs, none, or an ensemble."""
        if not self.base_segmenters:
            raise ValueError("base_segmenters must hold at least one (name, segmenter) pair")
        for entry in self.base_segmenters:
            if not (isinstance(entry, tuple) and len(entry) == 2 and hasattr(entry[1], "fit")):
                raise ValueError(
                    f"base_segmenters must be (name, unfitted segmenter) pairs; got {entry!r}"
                )
        nested = [n for n, seg in self.base_segmenters if isinstance(seg, EnsembleSegmenter)]
        if nested:
            raise InputError(f"the ensemble cannot contain {nested}", expected="base methods")

    def _pilot_k(self, X: np.ndarray, k_max: int) -> int:
        """k₀: the pilot's own choice of k among ``k_min..k_max``."""
        pilot = self.base_segmenters[0][1] if self.pilot is None else self.pilot
        return (
            with_params(
                pilot,
                k=None,
                k_min=self.k_min,
                k_max=k_max,
                min_segment_share=self.min_segment_share,
                random_state=self.random_state,
            )
            .fit(X)
            .k_
        )

    def _coassociation(
        self, Xe: np.ndarray, ks: list[int], rng: np.random.Generator, progress: Progress
    ) -> tuple[np.ndarray, list[Any]]:
        """Fit every base × k × resample; the share of them that put each two customers of
        the evaluation sample together, and the fitted bases (a base that refuses its
        subsample is left out)."""
        m = len(Xe)
        C = np.zeros((m, m), dtype=np.float32)
        bases: list[Any] = []
        seed = self.random_state
        for name, template in self.base_segmenters:
            for kk in ks:
                say(progress, f"ensemble: {name} k={kk}")
                for _ in range(self.resamples):
                    seed += 1
                    size = min(m, max(int(self.share * m), kk + 1, MIN_SEGMENT_CUSTOMERS * kk))
                    sub = np.sort(rng.choice(m, size, replace=False))
                    try:
                        base = with_params(template, k=kk, random_state=seed).fit(Xe[sub])
                    except InputError:
                        continue
                    lab = base.predict(Xe)
                    C += (lab[:, None] == lab[None, :]) & (lab[:, None] >= 0)
                    bases.append(base)
        if not bases:
            raise InputError(
                "no base segmentation could be fitted",
                expected="more customers",
                code="input.too_few_customers",
            )
        C /= len(bases)
        np.fill_diagonal(C, 1.0)
        return C, bases

    def _cuts(
        self,
        X: np.ndarray,
        Xe: np.ndarray,
        D: np.ndarray,
        ks: list[int],
        tss: float,
        rng: np.random.Generator,
    ) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
        """The consensus tree (average linkage on ``D``) cut at each k: the selection table,
        with each cut's silhouette on ``D``, and the cuts of the evaluation sample."""
        Z = linkage(squareform(D, checks=False), method="average")
        cands, cuts = Candidates(), {}
        sil_idx = sample_rows(len(X), 5000, rng)
        for kk in ks:
            cut = (fcluster(Z, t=kk, criterion="maxclust") - 1).astype(np.int32)
            got = int(cut.max()) + 1
            if got < 2:
                continue
            cuts[kk] = cut
            labels, inertia = metrics.assign(X, segment_means(Xe, cut, got))
            labels = labels.astype(np.int32)
            row = candidate_row(X, labels, got, tss, inertia)
            row["k"] = kk
            row["consensus_silhouette"] = float(silhouette_score(D, cut, metric="precomputed"))
            cands.add(row, labels[sil_idx])
        if not cuts:
            raise InputError("the consensus tree gave fewer than two segments")
        return cands.table(X[sil_idx], bootstrap=50, seed=self.random_state), cuts


def _agreement(
    bases: list[Any],
    X: np.ndarray,
    Xe: np.ndarray,
    labels: np.ndarray,
    ev_labels: np.ndarray,
    k: int,
) -> np.ndarray:
    """Per customer, the share of bases that, mapped to the final segments by majority
    (on the evaluation sample), place the customer in its final segment."""
    agree = np.zeros(len(X))
    for base in bases:
        lab_ev = base.predict(Xe)
        mapping = {}
        for b in np.unique(lab_ev[lab_ev >= 0]):
            mapping[int(b)] = int(np.bincount(ev_labels[lab_ev == b], minlength=k).argmax())
        lab_all = base.predict(X)
        mapped = np.array([mapping.get(int(v), -2) for v in range(-1, lab_all.max() + 1)])
        agree += mapped[lab_all + 1] == labels
    return agree / len(bases)


def _stability(C: np.ndarray, ev_labels: np.ndarray, k: int) -> np.ndarray:
    """Per segment, the mean co-association of its sampled members with each other."""
    return np.array(
        [
            float(C[np.ix_(ev_labels == s, ev_labels == s)].mean()) if (ev_labels == s).any() else 0
            for s in range(k)
        ]
    )
