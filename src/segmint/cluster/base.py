"""What every segmenter shares: the ``Segmenter`` base, the range of k a method may try,
size-ordered labels, segment centres, and the ``Assigner`` a saved model uses to place new
customers.

After ``fit`` every segmenter has ``labels_`` (int32; ``-1`` = noise, "Outliers"), ``k_``
(segments, noise excluded), ``centers_`` (k × d, in the preprocessed space, ordered like
the labels), ``inertia_`` and ``tss_`` (sums of squares for Calinski–Harabasz),
``selection_`` (one row per candidate) and ``decision_`` (what was chosen and why), and
``assigner()`` for the saved model. Segments are numbered by size, 0 = largest, so labels
do not depend on a seed's arbitrary order (``Segmenter._by_size``).

The k-choosing methods share one fit, the k sweep of ``cluster.sweep.KSweepSegmenter``;
the density methods and the ensemble fit their own way and share the rest from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from segmint.evaluate import metrics
from segmint.evaluate.select_k import (
    MIN_CUSTOMERS,
    MIN_SEGMENT_CUSTOMERS,
    Decision,
    max_segments,
)
from segmint.exceptions import InputError

# What ``fit(..., progress=...)`` accepts: a callable told what is being done, or None.
Progress = Callable[[str], None] | None


def say(progress: Progress, message: str) -> None:
    """Tell ``progress`` (if any) what is being done."""
    if progress:
        progress(message)


# Parameter constraints every k-choosing segmenter shares (scikit-learn's convention).
K_CONSTRAINTS: dict = {
    "k": [Interval(Integral, 2, None, closed="left"), None],
    "k_min": [Interval(Integral, 2, None, closed="left")],
    "k_max": [Interval(Integral, 2, None, closed="left")],
    "silhouette_sample": [Interval(Integral, 10, None, closed="left")],
    "bootstrap": [Interval(Integral, 1, None, closed="left")],
    "min_segment_share": [Interval(Real, 0, 0.5, closed="left")],
    "random_state": ["random_state"],
}


@dataclass
class KRange:
    """The k a segmenter tries; ``note`` says why the settings' range was narrowed (empty
    when it was not), ``fixed`` that the user fixed k. Both end the decision's reason."""

    ks: list[int]
    note: str = ""
    fixed: bool = False


def require_customers(n: int) -> None:
    """Refuse fewer than ``MIN_CUSTOMERS`` customers: two segments of two is the least a
    segmentation can be (``evaluate.select_k``)."""
    if n < MIN_CUSTOMERS:
        raise InputError(
            f"{n} customer(s) are too few to segment: segmint needs at least {MIN_CUSTOMERS} "
            f"customers (two segments of at least {MIN_SEGMENT_CUSTOMERS} customers each).",
            expected=f"data with at least {MIN_CUSTOMERS} customers",
            code="input.too_few_customers",
        )


def candidate_ks(seg: Any, limit: int, n: int, what: str = "") -> KRange:
    """The k to try: ``seg.k`` or ``k_min..k_max``, within what ``n`` customers allow.

    Every segment needs ``MIN_SEGMENT_CUSTOMERS`` customers (``evaluate.select_k``), so k is
    at most ``max_segments(n)``; ``limit`` is the method's own bound (distinct feature
    profiles, ``what`` describes it). A ``k_max`` beyond the bound is lowered, with the reason
    in ``note`` (the manifest's selection reason); a fixed ``k`` or a ``k_min`` beyond it
    cannot be honoured and is refused, as are fewer than ``MIN_CUSTOMERS`` customers.
    """
    if seg.k_max < seg.k_min:
        raise InputError(
            f"k_max ({seg.k_max}) must be >= k_min ({seg.k_min})",
            settings=("clustering.k_min", "clustering.k_max"),
        )
    require_customers(n)
    by_size = max_segments(n)
    if limit < by_size:
        cap = max(limit, 1)
        why = f"{n} customers{what} allow at most {cap} segment(s)"
        more = "more customers or more varied features"
    else:
        cap = by_size
        why = (
            f"{n} customers allow at most {cap} segments of at least "
            f"{MIN_SEGMENT_CUSTOMERS} customers each"
        )
        more = "more customers"
    if seg.k:
        if seg.k > cap:
            raise InputError(
                f"k = {seg.k} cannot be honoured: {why}.",
                expected=f"k = {cap} or fewer (clustering.k), no fixed k to choose it, or {more}"
                if cap >= 2
                else more,
                code="input.too_few_customers",
                settings=("clustering.k",),
            )
        return KRange([seg.k], fixed=True)
    if seg.k_min > cap:
        raise InputError(
            f"{why}, fewer than the smallest k tried (k_min = {seg.k_min}).",
            expected=f"k_min = {cap} or fewer (clustering.k_min), or {more}" if cap >= 2 else more,
            code="input.too_few_customers",
            settings=("clustering.k_min",),
        )
    note = ""
    if seg.k_max > cap:
        note = f"The range k = {seg.k_min}..{seg.k_max} was narrowed to {seg.k_min}..{cap}: {why}."
    return KRange(list(range(seg.k_min, min(seg.k_max, cap) + 1)), note)


def profile_ks(seg: Any, profiles: np.ndarray, n: int) -> KRange:
    """``candidate_ks`` bounded by the distinct rows of ``profiles`` (the customers a method
    fits on, as it sees them): no method can make more segments than different customers."""
    distinct = distinct_rows(profiles, limit=max(seg.k or 0, seg.k_max) + 1)
    return candidate_ks(
        seg, min(distinct, len(profiles) - 1), n, f" with {distinct} distinct feature profile(s)"
    )


def distinct_rows(X: np.ndarray, limit: int) -> int:
    """Number of distinct rows, counted up to ``limit`` (cheap early exit): no method can
    make more segments than there are different customers."""
    seen: set[bytes] = set()
    for row in np.ascontiguousarray(X):
        seen.add(row.tobytes())
        if len(seen) >= limit:
            break
    return len(seen)


def centroid_scores(
    X: np.ndarray, centers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, distance to the own centre, and confidence in [0, 1] for each row.

    Confidence is ``1 − d1/d2`` with d1, d2 the distances to the nearest and second
    nearest centres: 0 on the border between two segments, 1 at the centre.
    """
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(centers, dtype=np.float32)
    n = len(X)
    labels = np.empty(n, dtype=np.int32)
    d1 = np.empty(n, dtype=np.float64)
    conf = np.empty(n, dtype=np.float64)
    cc = np.einsum("ij,ij->i", C, C)[None, :]
    for s in range(0, n, 262_144):
        blk = X[s : s + 262_144]
        d2 = np.einsum("ij,ij->i", blk, blk)[:, None] - 2.0 * blk @ C.T + cc
        d = np.sqrt(np.maximum(d2, 0.0))
        part = np.partition(d, 1, axis=1) if C.shape[0] > 1 else np.hstack([d, d])
        e = s + len(blk)
        labels[s:e] = d.argmin(axis=1)
        d1[s:e] = part[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            conf[s:e] = np.nan_to_num(1.0 - part[:, 0] / part[:, 1], nan=0.0)
    return labels, d1, np.clip(conf, 0.0, 1.0)


class Assigner:
    """Places new customers in the segments of a fitted model (saved with the model).

    ``kind``:

    - ``"centroid"``: nearest centre (k-means family, hierarchical);
    - ``"mixture"``: highest posterior of a Gaussian mixture (``order`` maps segment →
      mixture component); confidence = that posterior; ``proba`` per segment;
    - ``"density"``: the label of the nearest *core* point when it is within ``radius``,
      else noise (``-1``) — DBSCAN's own rule for new points.
    """

    def __init__(
        self,
        kind: str,
        centers: np.ndarray,
        *,
        mixture: Any = None,
        order: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        radius: float | None = None,
    ) -> None:
        self.kind = kind
        self.centers = np.asarray(centers, dtype=np.float32)
        self.mixture = mixture
        self.order = order
        self.points = points
        self.point_labels = point_labels
        self.radius = radius

    @property
    def k(self) -> int:
        return len(self.centers)

    def proba(self, X: np.ndarray) -> np.ndarray | None:
        if self.kind != "mixture":
            return None
        return self.mixture.predict_proba(np.asarray(X, dtype=np.float64))[:, self.order]

    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, distance to the own centre, confidence in [0, 1]) per row."""
        labels, dist, conf = centroid_scores(X, self.centers)
        if self.kind == "mixture":
            p = self.proba(X)
            labels = p.argmax(axis=1).astype(np.int32)
            conf = p.max(axis=1)
            diff = np.asarray(X, dtype=np.float32) - self.centers[labels]
            dist = np.sqrt(np.einsum("ij,ij->i", diff, diff)).astype(np.float64)
        elif self.kind == "density":
            near, d = _nearest(self.points, np.asarray(X, dtype=np.float32))
            labels = np.where(d <= self.radius, self.point_labels[near], -1).astype(np.int32)
            noise = labels < 0
            conf = np.where(noise, 0.0, conf)
            dist = np.where(noise, np.nan, dist)
            if (~noise).any():  # distance and confidence against the assigned segment
                diff = np.asarray(X, dtype=np.float32)[~noise] - self.centers[labels[~noise]]
                dist[~noise] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return labels, dist, conf

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.score(X)[0]


class Segmenter(ClusterMixin, BaseEstimator):
    """Base of every segmenter: ``predict`` goes through ``assigner()``, the same rule a saved
    model applies. The default assigner is the nearest segment centre; methods with another
    rule (mixtures, density, prototypes) override ``assigner``.

    Subclasses fit in their own way, then number segments by size with ``_by_size`` and
    record the attributes every segmenter has with ``_set_fitted``.
    """

    def assigner(self) -> Assigner:
        check_is_fitted(self, "centers_")
        return Assigner("centroid", self.centers_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.assigner().predict(X)

    @staticmethod
    def _by_size(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels numbered by size, ``order``): segment ``s`` is the method's own label
        ``order[s]``, so ``own_centers[order]`` are the centres in segment order."""
        remap = order_by_size(labels, k)
        return relabel(labels, remap), np.argsort(remap)

    def _set_fitted(
        self,
        *,
        labels: np.ndarray,
        k: int,
        centers: np.ndarray,
        inertia: float,
        tss: float,
        selection: pd.DataFrame,
        decision: Decision,
        n_features: int,
    ) -> None:
        """Record what every fitted segmenter has (module doc); labels in segment order."""
        self.labels_ = labels
        self.k_ = k
        self.centers_ = centers
        self.inertia_ = inertia
        self.tss_ = tss
        self.selection_ = selection
        self.decision_ = decision
        self.n_features_in_ = n_features


def _nearest(points: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=1).fit(points)
    d, i = nn.kneighbors(X)
    return i[:, 0], d[:, 0]


def order_by_size(labels: np.ndarray, k: int) -> np.ndarray:
    """Map old label → new label so that 0 is the largest segment (noise stays -1)."""
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    order = np.argsort(-sizes, kind="stable")
    remap = np.empty(k, dtype=np.int32)
    remap[order] = np.arange(k, dtype=np.int32)
    return remap


def relabel(labels: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """``labels`` through ``remap`` (int32; noise stays -1)."""
    out = np.asarray(labels).astype(np.int32).copy()
    ok = out >= 0
    out[ok] = remap[out[ok]]
    return out


def segment_means(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean of each segment's rows (noise excluded), shape (k, d)."""
    ok = labels >= 0
    if not ok.all():
        X, labels = X[ok], labels[ok]
    sums = metrics.group_sums(X, labels, k)
    counts = np.maximum(np.bincount(labels, minlength=k), 1)[:, None]
    return (sums / counts).astype(np.float32)


def within_sum_of_squares(X: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> float:
    """Inertia: squared distances of the rows to their segment's centre (noise excluded)."""
    ok = labels >= 0
    if not ok.all():
        X, labels = X[ok], labels[ok]
    diff = X - centers[labels]
    return float(np.einsum("ij,ij->", diff, diff))


def sample_rows(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """All ``n`` row indices, or ``size`` of them drawn at random (sorted)."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))
