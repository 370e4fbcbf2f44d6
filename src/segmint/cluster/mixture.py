"""Gaussian mixture segmentation with membership probabilities; k chosen by BIC.

Each candidate k is fitted (scikit-learn ``GaussianMixture``, full or diagonal covariance) on
a sample of at most ``sweep_sample`` customers; the k with the lowest Bayesian information
criterion wins — the curve is in ``selection_`` and the report. The chosen k is refitted with
``n_init`` starts, and every customer gets its posterior probability of each segment; the
segment is the most probable one and ``confidence`` is that probability, so customers
between segments are visible (``low_confidence``). Silhouette, Calinski–Harabasz and
Davies–Bouldin are computed for each k as for k-means, for comparison with other methods.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..evaluate import metrics
from ..evaluate.select_k import Decision
from .base import (
    K_CONSTRAINTS,
    Assigner,
    Candidates,
    Segmenter,
    candidate_row,
    order_by_size,
    profile_ks,
    relabel,
    sample_rows,
)


class MixtureSegmenter(Segmenter):
    """Gaussian mixture with k by BIC (see module doc).

    Attributes
    ----------
    labels_, k_, centers_, inertia_, tss_, selection_, decision_ : see ``cluster.base``
    proba_ : ndarray, shape (n, k)
        Membership probabilities, columns in segment order.
    log_likelihood_ : ndarray, shape (n,)
        Per-customer log density (the anomaly screen's low-likelihood signal).
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        **K_CONSTRAINTS,
        "covariance": [StrOptions({"full", "diag"})],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "sweep_sample": [Interval(Integral, 10, None, closed="left")],
        "low_confidence": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(
        self,
        *,
        covariance: str = "full",
        k: int | None = None,
        k_min: int = 2,
        k_max: int = 10,
        n_init: int = 2,
        sweep_sample: int = 50_000,
        silhouette_sample: int = 10_000,
        bootstrap: int = 200,
        low_confidence: float = 0.6,
        random_state: int = 0,
    ) -> None:
        self.covariance = covariance
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.n_init = n_init
        self.sweep_sample = sweep_sample
        self.silhouette_sample = silhouette_sample
        self.bootstrap = bootstrap
        self.low_confidence = low_confidence
        self.random_state = random_state

    def _gmm(self, k: int, n_init: int) -> GaussianMixture:
        return GaussianMixture(
            n_components=k,
            covariance_type=self.covariance,
            n_init=n_init,
            reg_covar=1e-5,
            random_state=self.random_state,
        )

    def fit(
        self, X: np.ndarray, y: Any = None, *, progress: Callable[[str], None] | None = None
    ) -> MixtureSegmenter:
        self._validate_params()
        X = np.ascontiguousarray(X, dtype=np.float64)
        n = len(X)
        rng = np.random.default_rng(self.random_state)
        fit_idx = sample_rows(n, self.sweep_sample, rng)
        sil_idx = sample_rows(n, self.silhouette_sample, rng)
        krange = profile_ks(self, X[fit_idx], n)
        ks = krange.ks
        tss = metrics.total_sum_of_squares(X)
        cands = Candidates([], [])
        models: dict[int, GaussianMixture] = {}
        for k in ks:
            if progress:
                progress(f"k={k}")
            gm = self._gmm(k, 1).fit(X[fit_idx])
            models[k] = gm
            labels = gm.predict(X).astype(np.int32)
            cands.sil_labels.append(labels[sil_idx])
            row = candidate_row(X, labels, k, tss)
            row["bic"] = float(gm.bic(X[fit_idx]))
            cands.rows.append(row)
        table = cands.table(X[sil_idx], self.bootstrap, self.random_state)
        k = int(table.loc[table["bic"].idxmin(), "k"])
        falling = len(ks) > 1 and k == max(ks) and not krange.note
        reason = (
            f"k = {k} was fixed by the user."
            if self.k
            else f"k = {k} has the lowest BIC ({table['bic'].min():,.0f}) of k = "
            f"{min(ks)}..{max(ks)}"
            + (
                "; the curve was still falling at the largest k tried, so a larger k_max "
                "may fit better."
                if falling
                else "."
            )
        ) + (f" {krange.note}" if krange.note else "")
        if progress:
            progress(f"final k={k}")
        final = self._gmm(k, self.n_init).fit(X[fit_idx]) if self.n_init > 1 else models[k]
        proba = final.predict_proba(X)
        labels = proba.argmax(axis=1).astype(np.int32)
        kk = final.n_components
        remap = order_by_size(labels, kk)
        order = np.argsort(remap)  # segment s = component order[s]
        table["chosen"] = table["k"] == k
        self.model_ = final
        self.order_ = order
        self.labels_ = relabel(labels, remap)
        self.proba_ = proba[:, order]
        self.centers_ = final.means_[order].astype(np.float32)
        self.k_ = kk
        diff = X - self.centers_[self.labels_]
        self.inertia_ = float(np.einsum("ij,ij->", diff, diff))
        self.tss_ = tss
        self.log_likelihood_ = final.score_samples(X)
        self.low_confidence_count_ = int((self.proba_.max(axis=1) < self.low_confidence).sum())
        self.selection_ = table
        self.decision_ = Decision(k, {"bic": k}, reason)
        self.n_features_in_ = X.shape[1]
        return self

    def assigner(self) -> Assigner:
        check_is_fitted(self, "model_")
        return Assigner("mixture", self.centers_, mixture=self.model_, order=self.order_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.assigner().proba(X)
