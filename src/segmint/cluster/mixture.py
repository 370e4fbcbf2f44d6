"""Gaussian mixture segmentation with membership probabilities; k chosen by BIC.

Each candidate k is fitted (scikit-learn ``GaussianMixture``, full or diagonal covariance) on
a sample of at most ``sweep_sample`` customers; the k with the lowest Bayesian information
criterion wins — the curve is in ``selection_`` and the report. The chosen k is refitted with
``n_init`` starts, and every customer gets its posterior probability of each segment; the
segment is the most probable one and ``confidence`` is that probability, so customers
between segments are visible (``low_confidence``). Silhouette, Calinski–Harabasz and
Davies–Bouldin are computed for each k as for k-means, for comparison with other methods.
The sweep and the numbering of segments by size are ``cluster.sweep``'s; this module fits one
k, chooses by BIC (``_decide``) and keeps the mixture and its probabilities.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.mixture import GaussianMixture
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from segmint.cluster.base import Assigner, KRange
from segmint.cluster.sweep import Candidate, Final, KSweepSegmenter, Sweep
from segmint.evaluate.select_k import Decision


class _Fitted(NamedTuple):
    """The chosen mixture and its posteriors of every row (component order)."""

    mixture: GaussianMixture
    proba: np.ndarray


class MixtureSegmenter(KSweepSegmenter):
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
        **KSweepSegmenter._parameter_constraints,
        "covariance": [StrOptions({"full", "diag"})],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "sweep_sample": [Interval(Integral, 10, None, closed="left")],
        "low_confidence": [Interval(Real, 0, 1, closed="right")],
    }
    _dtype = np.float64

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

    def _fit_k(self, sweep: Sweep, k: int) -> Candidate:
        gm = self._gmm(k, 1).fit(sweep.fit_rows)
        labels = gm.predict(sweep.X).astype(np.int32)
        return Candidate(gm, labels, scores={"bic": float(gm.bic(sweep.fit_rows))})

    def _decide(self, table: pd.DataFrame, krange: KRange) -> Decision:
        """The lowest BIC (not the vote: the mixture's own criterion)."""
        k = int(table.loc[table["bic"].idxmin(), "k"])
        ks = krange.ks
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
        return Decision(k, {"bic": k}, reason)

    def _finish(self, sweep: Sweep, k: int, model: Any) -> Final:
        final = self._gmm(k, self.n_init).fit(sweep.fit_rows) if self.n_init > 1 else model
        proba = final.predict_proba(sweep.X)
        labels = proba.argmax(axis=1).astype(np.int32)
        return Final(labels, final.n_components, final.means_, model=_Fitted(final, proba))

    def _keep(self, sweep: Sweep, final: Final, order: np.ndarray) -> None:
        mixture, proba = final.model
        self.model_ = mixture
        self.order_ = order  # segment s = mixture component order[s]
        self.proba_ = proba[:, order]
        self.log_likelihood_ = mixture.score_samples(sweep.X)
        self.low_confidence_count_ = int((self.proba_.max(axis=1) < self.low_confidence).sum())

    def assigner(self) -> Assigner:
        check_is_fitted(self, "model_")
        return Assigner("mixture", self.centers_, mixture=self.model_, order=self.order_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.assigner().proba(X)
