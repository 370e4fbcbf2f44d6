"""K-Prototypes for mixed numeric + categorical customers (the ``kmodes`` package).

Why: k-means on one-hot columns treats a category as a set of 0/1 coordinates, so a feature
with many levels weighs more than one with two, and a "mode" becomes a fractional average.
K-Prototypes (Huang 1998) measures numeric features by squared Euclidean distance and
categorical ones by mismatch count, weighted by ``gamma``, and keeps a modal category per
segment. Default ``gamma``: twice the mean variance of the (standardized) numeric features,
so one categorical mismatch costs what one numeric feature costs between two random
customers on average — each feature weighs the same. kmodes' own default (half the numeric
standard deviation) let two noise numbers drown a category that defined the groups in our
tests. The ``kmodes``
package (maintained, scikit-learn style) implements it; it loops in Python, so it is fitted
on at most ``max_fit_sample`` customers and everyone is then assigned by the same cost,
vectorised here.

The segmenter reads the preprocessed matrix: numeric columns as they are (scaled), each
categorical feature decoded from its one-hot block (``categorical_groups``, which the
pipeline sets from the fitted preprocessor) back to a category code. Every candidate k gets
``n_init`` random (Huang) starts — kmodes' deterministic Cao start fell into a merged-groups
optimum at the true k in our tests — and k is chosen by the same vote as k-means over
candidates scored on the preprocessed matrix (the sweep of ``cluster.sweep``). Segment
centres (for reports) are the means of the segments' preprocessed rows.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from segmint.cluster.base import Assigner, Progress
from segmint.cluster.sweep import Candidate, Final, KSweepSegmenter, Sweep
from segmint.exceptions import InputError


def decode(X: np.ndarray, groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(numeric block, category codes) from a preprocessed matrix; an all-zero one-hot
    block (unknown category) decodes to one past the last code."""
    cat_cols = {c for g in groups for c in g}
    num = X[:, [j for j in range(X.shape[1]) if j not in cat_cols]].astype(np.float64)
    codes = np.empty((len(X), len(groups)), dtype=np.int64)
    for i, g in enumerate(groups):
        block = X[:, g]
        codes[:, i] = np.where(block.max(axis=1) > 0, block.argmax(axis=1), len(g))
    return num, codes


class PrototypeAssigner(Assigner):
    """Nearest prototype by K-Prototypes' cost (numeric squared distance + gamma x
    categorical mismatches); ``centers`` (means of the preprocessed matrix) are for reports."""

    def __init__(
        self,
        centers: np.ndarray,
        *,
        numeric_centers: np.ndarray,
        modes: np.ndarray,
        gamma: float,
        groups: list[list[int]],
    ) -> None:
        super().__init__("prototypes", centers)
        self.numeric_centers = numeric_centers
        self.modes = modes
        self.gamma = gamma
        self.groups = groups

    def cost(self, X: np.ndarray) -> np.ndarray:
        num, codes = decode(np.asarray(X, dtype=np.float32), self.groups)
        d = ((num[:, None, :] - self.numeric_centers[None, :, :]) ** 2).sum(axis=2)
        mism = (codes[:, None, :] != self.modes[None, :, :]).sum(axis=2)
        return d + self.gamma * mism

    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(X)
        labels = np.empty(n, dtype=np.int32)
        dist = np.empty(n)
        conf = np.empty(n)
        for s in range(0, n, 100_000):
            c = self.cost(X[s : s + 100_000])
            part = np.partition(c, 1, axis=1) if c.shape[1] > 1 else np.hstack([c, c])
            labels[s : s + len(c)] = c.argmin(axis=1)
            d1, d2 = np.sqrt(part[:, 0]), np.sqrt(part[:, 1])
            dist[s : s + len(c)] = d1
            with np.errstate(invalid="ignore", divide="ignore"):
                conf[s : s + len(c)] = np.clip(np.nan_to_num(1 - d1 / d2, nan=0.0), 0, 1)
        return labels, dist, conf


class KPrototypesSegmenter(KSweepSegmenter):
    """K-Prototypes with automatic k (module doc). ``categorical_groups``: one list of
    output-column indices per categorical feature (set by the pipeline)."""

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        **KSweepSegmenter._parameter_constraints,
        "categorical_groups": [list, None],
        "gamma": [Interval(Real, 0, None, closed="neither"), None],
        "max_fit_sample": [Interval(Integral, 50, 50_000, closed="both")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
    }
    _sample_param = "max_fit_sample"

    def __init__(
        self,
        *,
        categorical_groups: list[list[int]] | None = None,
        gamma: float | None = None,
        k: int | None = None,
        k_min: int = 2,
        k_max: int = 10,
        max_fit_sample: int = 2000,
        n_init: int = 2,
        silhouette_sample: int = 10_000,
        bootstrap: int = 200,
        min_segment_share: float = 0.005,
        random_state: int = 0,
    ) -> None:
        self.categorical_groups = categorical_groups
        self.gamma = gamma
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.max_fit_sample = max_fit_sample
        self.n_init = n_init
        self.silhouette_sample = silhouette_sample
        self.bootstrap = bootstrap
        self.min_segment_share = min_segment_share
        self.random_state = random_state

    def _fit_one(
        self, num: np.ndarray, codes: np.ndarray, k: int, n_init: int
    ) -> PrototypeAssigner:
        from kmodes.kprototypes import KPrototypes

        p = num.shape[1]
        data = np.column_stack([num, codes]).astype(object)
        gamma = self.gamma or (2.0 * float(num.var(axis=0).mean()) if p else 1.0)
        categorical = list(range(p, p + codes.shape[1]))

        def run(init: Any, starts: int) -> Any:
            return KPrototypes(
                n_clusters=k,
                init=init,
                n_init=starts,
                gamma=gamma,
                random_state=self.random_state,
                n_jobs=1,
            ).fit(data, categorical=categorical)

        try:
            kp = run("Huang", n_init)
        except ValueError as exc:
            # kmodes draws numeric prototypes at random and gives up when some stay empty,
            # which happens on a few dozen customers; start from k distinct customers instead
            if "could not initialize" not in str(exc):
                raise
            kp = run(self._spread_start(num, codes, k, gamma), 1)
        cent = np.asarray(kp.cluster_centroids_, dtype=float)
        return PrototypeAssigner(
            np.zeros((k, 1), dtype=np.float32),
            numeric_centers=cent[:, :p],
            modes=cent[:, p:].astype(np.int64),
            gamma=float(kp.gamma),
            groups=self.categorical_groups or [],
        )

    def _spread_start(
        self, num: np.ndarray, codes: np.ndarray, k: int, gamma: float
    ) -> list[np.ndarray]:
        """k distinct customers as starting prototypes, drawn as k-means++ draws centres
        (each next one with probability proportional to its K-Prototypes cost to the nearest
        already drawn), so every prototype starts with a member: itself."""
        rng = np.random.default_rng(self.random_state)
        chosen = [int(rng.integers(len(num)))]
        cost = np.full(len(num), np.inf)
        for _ in range(1, k):
            c = chosen[-1]
            new = ((num - num[c]) ** 2).sum(axis=1) + gamma * (codes != codes[c]).sum(axis=1)
            cost = np.minimum(cost, new)
            chosen.append(int(rng.choice(len(num), p=cost / cost.sum())))
        return [num[chosen], codes[chosen]]

    def _check_input(self, X: np.ndarray) -> None:
        if not self.categorical_groups:
            raise InputError(
                "K-Prototypes needs at least one categorical feature; these features are all "
                "numeric.",
                expected="clustering.algorithm = kmeans (or another method) for numeric-only data",
                settings=("clustering.algorithm",),
            )

    def _profiles(self, fit_rows: np.ndarray) -> np.ndarray:
        return np.column_stack(decode(fit_rows, self.categorical_groups))

    def _prepare(self, fit_rows: np.ndarray, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
        return decode(fit_rows, self.categorical_groups)

    def _fit_k(self, sweep: Sweep, k: int) -> Candidate:
        num, codes = sweep.prepared
        prototypes = self._fit_one(num, codes, k, self.n_init)
        return Candidate(prototypes, prototypes.predict(sweep.X))

    def _finish(self, sweep: Sweep, k: int, model: Any) -> Final:
        return Final(model.predict(sweep.X), k, model=model)

    def _keep(self, sweep: Sweep, final: Final, order: np.ndarray) -> None:
        fitted: PrototypeAssigner = final.model
        self.assigner_ = PrototypeAssigner(
            self.centers_,
            numeric_centers=fitted.numeric_centers[order],
            modes=fitted.modes[order],
            gamma=fitted.gamma,
            groups=self.categorical_groups,
        )
        self.gamma_ = fitted.gamma

    def assigner(self) -> Assigner:
        check_is_fitted(self, "assigner_")
        return self.assigner_
