"""Density-based segmentation: DBSCAN and HDBSCAN. Customers in no dense group are noise:
``segment = -1``, named "Outliers", counted and reported.

- **DBSCAN**: ``eps`` defaults to the knee of the sorted k-distance curve (distance of each
  customer to its ``min_samples``-th nearest neighbour, itself included — exactly DBSCAN's
  core-point test), found as the point farthest below the chord of the normalised curve;
  ``min_samples`` defaults to twice the number of features (Sander et al. 1998).
- **HDBSCAN** (scikit-learn): ``min_cluster_size`` defaults to 1% of the fitted customers
  (at least 10).
- **Few customers**: two dense groups need ``min_samples`` customers each, so the defaults
  are capped at a quarter of the fitted customers (at least 2): with 20 customers and ten
  features, 2 x features = 20 could only ever find one group. The cap binds below ~80
  customers (DBSCAN, ten features) or 40 (HDBSCAN's 10); given values are used as they are.
  When most customers have ``min_samples`` identical ones the knee is a distance of 0, and
  ``eps`` is half the least distance between different customers: the dense groups are the
  stacks of identical customers.

Both need neighbourhoods of every point, so above ``max_fit_sample`` customers they fit a
random sample; every other customer takes the label of the nearest *core* point of the fit
when it lies within the density radius (``eps``; for HDBSCAN the 95th percentile of the
clustered points' ``min_samples``-distance), and is noise otherwise — the rule the saved
model applies to new customers too. Segment centres are the means of each segment's members.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN, HDBSCAN
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from segmint.cluster.base import (
    Assigner,
    Progress,
    Segmenter,
    require_customers,
    sample_rows,
    say,
    segment_means,
)
from segmint.cluster.candidates import candidate_row
from segmint.evaluate import metrics
from segmint.evaluate.select_k import Decision
from segmint.exceptions import InputError


@dataclass(frozen=True)
class Dense:
    """The dense groups found on the fitted customers."""

    labels: np.ndarray  # of the fitted customers; -1 = noise
    core: np.ndarray  # mask of the points other customers are matched to
    radius: float  # how near a core point a customer must lie to join its segment
    how: str  # how the radius was set (for the decision's reason)
    params: str  # the settings used (for a refusal)


def knee_of_increasing(y: np.ndarray) -> int:
    """Index of the knee of an increasing curve: farthest below its normalised chord."""
    y = np.asarray(y, dtype=float)
    if len(y) < 3 or y[-1] == y[0]:
        return len(y) - 1
    x = np.linspace(0.0, 1.0, len(y))
    yn = (y - y[0]) / (y[-1] - y[0])
    return int(np.argmax(x - yn))


def _duplicate_radius(X: np.ndarray) -> float:
    """Half the smallest distance between two different customers: a radius that joins
    identical customers and nothing else (the knee of the k-distance curve is 0 when most
    customers have ``min_samples`` duplicates, and DBSCAN needs a positive radius)."""
    distinct = np.unique(X, axis=0)
    if len(distinct) < 2:
        raise InputError(
            "every customer has the same features, so there is nothing to separate.",
            expected="more varied features",
        )
    d = NearestNeighbors(n_neighbors=2).fit(distinct).kneighbors(distinct)[0][:, 1]
    return float(d.min()) / 2


class DensitySegmenter(Segmenter):
    """DBSCAN or HDBSCAN with noise as its own group (see module doc).

    Attributes
    ----------
    labels_, k_, centers_, inertia_, tss_, selection_, decision_ : see ``cluster.base``
    eps_ : float
        DBSCAN's radius (chosen or given); for HDBSCAN the extension radius.
    kdist_ : ndarray
        Sorted ``min_samples``-distances of the fitted customers (the k-distance plot).
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "method": [StrOptions({"dbscan", "hdbscan"})],
        "eps": [Interval(Real, 0, None, closed="neither"), None],
        "min_samples": [Interval(Integral, 2, None, closed="left"), None],
        "min_cluster_size": [Interval(Integral, 2, None, closed="left"), None],
        "max_fit_sample": [Interval(Integral, 10, 100_000, closed="both")],
        "silhouette_sample": [Interval(Integral, 10, None, closed="left")],
        "bootstrap": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        method: str = "dbscan",
        eps: float | None = None,
        min_samples: int | None = None,
        min_cluster_size: int | None = None,
        max_fit_sample: int = 10_000,
        silhouette_sample: int = 10_000,
        bootstrap: int = 200,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.eps = eps
        self.min_samples = min_samples
        self.min_cluster_size = min_cluster_size
        self.max_fit_sample = max_fit_sample
        self.silhouette_sample = silhouette_sample
        self.bootstrap = bootstrap
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None, *, progress: Progress = None) -> Self:
        """Find dense groups on (a sample of) the customers, extend them to everyone, and
        number them by size; noise is -1 (module doc). No k is swept."""
        self._validate_params()
        X = np.ascontiguousarray(X, dtype=np.float32)
        n, d = X.shape
        require_customers(n)
        rng = np.random.default_rng(self.random_state)
        fit_idx = sample_rows(n, self.max_fit_sample, rng)
        Xs = X[fit_idx]
        m = len(Xs)
        small = max(2, m // 4)  # see "Few customers" in the module doc
        min_samples = min(self.min_samples or min(max(5, 2 * d), small), m - 1)
        say(progress, f"{self.method} on {m:,} customers")
        kdist = NearestNeighbors(n_neighbors=min_samples).fit(Xs).kneighbors(Xs)[0][:, -1]
        kdist = np.sort(kdist)
        if self.method == "dbscan":
            dense = self._dbscan(Xs, min_samples, kdist)
        else:
            dense = self._hdbscan(Xs, min_samples, small)
        k = int(dense.labels.max()) + 1 if (dense.labels >= 0).any() else 0
        if k < 2:
            raise self._too_few_groups(k, m, dense.params)
        labels, _ = self._by_size(_extend(X, fit_idx, dense, k), k)
        centers = segment_means(X, labels, k)
        self.assigner_ = Assigner(
            "density",
            centers,
            points=Xs[dense.core],
            point_labels=labels[fit_idx][dense.core],
            radius=dense.radius,
        )
        ok = labels >= 0
        tss = metrics.total_sum_of_squares(X[ok])
        row = candidate_row(X, labels, k, tss)
        sil_idx = sample_rows(int(ok.sum()), self.silhouette_sample, rng)
        sil = metrics.sampled_silhouette(
            X[ok], labels[ok], sil_idx, bootstrap=self.bootstrap, seed=self.random_state
        )
        row.update(
            silhouette=sil.mean,
            silhouette_low=sil.low,
            silhouette_high=sil.high,
            eps=dense.radius,
            min_samples=min_samples,
            chosen=True,
        )
        self._set_fitted(
            labels=labels,
            k=k,
            centers=centers,
            inertia=float(row["inertia"]),
            tss=tss,
            selection=pd.DataFrame([row]),
            decision=self._decision(k, dense, min_samples, float(1 - ok.mean())),
            n_features=d,
        )
        self.eps_ = dense.radius
        self.min_samples_ = min_samples
        self.kdist_ = kdist
        self.fitted_on_sample_ = m < n
        return self

    def _dbscan(self, Xs: np.ndarray, min_samples: int, kdist: np.ndarray) -> Dense:
        """DBSCAN with the given ``eps`` or the knee of the k-distance curve."""
        eps, how = self.eps, "given"
        if eps is None:
            eps = float(kdist[knee_of_increasing(kdist)])
            how = "the knee of the k-distance curve"
            if eps <= 0:  # the knee is at duplicates: DBSCAN needs a positive radius
                eps = _duplicate_radius(Xs)
                how = "half the least distance between different customers (duplicates)"
        db = DBSCAN(eps=eps, min_samples=min_samples).fit(Xs)
        core = np.zeros(len(Xs), dtype=bool)
        core[db.core_sample_indices_] = True
        params = f"eps {eps:.3g}, min_samples {min_samples}"
        return Dense(db.labels_.astype(np.int32), core, eps, how, params)

    def _hdbscan(self, Xs: np.ndarray, min_samples: int, small: int) -> Dense:
        """HDBSCAN; the extension radius is the 95th percentile of the clustered points'
        ``min_samples``-distance."""
        mcs = self.min_cluster_size or min(max(10, int(0.01 * len(Xs))), small)
        hd = HDBSCAN(min_cluster_size=mcs, min_samples=min_samples, copy=True).fit(Xs)
        labels = hd.labels_.astype(np.int32)
        inner = labels >= 0
        radius = 0.0
        if inner.sum() > 1:
            nn = NearestNeighbors(n_neighbors=min(min_samples, int(inner.sum()))).fit(Xs[inner])
            radius = float(np.quantile(nn.kneighbors(Xs[inner])[0][:, -1], 0.95))
        params = f"min_cluster_size {mcs}, min_samples {min_samples}"
        return Dense(labels, inner, radius, "extension radius", params)

    def _decision(self, k: int, dense: Dense, min_samples: int, noise: float) -> Decision:
        return Decision(
            k,
            {self.method: k},
            f"{self.method.upper()} found {k} dense segments (eps {dense.radius:.3g}, "
            f"{dense.how}; min_samples {min_samples}); {noise:.1%} of customers are in no "
            "dense group and form the Outliers group (segment -1).",
        )

    def _too_few_groups(self, k: int, m: int, params: str) -> InputError:
        """The refusal when fewer than two dense groups exist, with what to change."""
        hint = (
            "a larger clustering.eps or a smaller clustering.min_samples"
            if self.method == "dbscan"
            else "a smaller clustering.min_cluster_size or clustering.min_samples"
        )
        return InputError(
            f"{self.method.upper()} found {k} dense group(s) among {m:,} customers "
            f"({params}); a segmentation needs at least two.",
            expected=f"{hint}, or another algorithm (clustering.algorithm)",
            settings=("clustering.algorithm",),
        )

    def assigner(self) -> Assigner:
        check_is_fitted(self, "assigner_")
        return self.assigner_


def _extend(X: np.ndarray, fit_idx: np.ndarray, dense: Dense, k: int) -> np.ndarray:
    """Labels of every customer: the fitted ones keep theirs, the others take the nearest
    core point's within the radius (noise otherwise) — the saved model's rule."""
    if len(fit_idx) == len(X):
        return dense.labels
    Xs = X[fit_idx]
    assigner = Assigner(
        "density",
        segment_means(Xs, dense.labels, k),
        points=Xs[dense.core],
        point_labels=dense.labels[dense.core],
        radius=dense.radius,
    )
    labels = assigner.predict(X)
    labels[fit_idx] = dense.labels
    return labels
