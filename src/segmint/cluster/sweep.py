"""The k sweep, written once: the base of every segmenter that chooses its number of segments.

``KSweepSegmenter.fit`` runs the same skeleton for k-means (and its variants), hierarchical
linkage, Gaussian mixtures and K-Prototypes:

1. **sample**: the rows candidates are fitted on (at most the parameter named by
   ``_sample_param``) and the silhouette sample, both drawn with ``random_state``; the
   candidate k are bounded by what the customers allow (``base.profile_ks``);
2. **sweep**: every candidate k is fitted (``_fit_k``, the method's own job) and scored
   (``candidates.candidate_row`` plus the method's per-k scores, e.g. BIC), and the
   silhouettes of all candidates are computed in one pass (``candidates.Candidates``);
3. **choose**: ``_decide`` — the vote of ``evaluate.select_k`` unless the method has its
   own rule (mixtures: the lowest BIC);
4. **finish**: the chosen k is fitted for everyone (``_finish``), segments are numbered by
   size (0 = largest) and relabelled, centres put in segment order, and the attributes
   every segmenter has are recorded (``base.Segmenter``); ``_keep`` adds the method's own.

A method implements ``_fit_k`` and ``_finish``; where it differs it overrides ``_prepare``
(e.g. one linkage tree serves every k), ``_profiles``, ``_decide``, ``_keep`` and
``_check_input``, and sets ``_dtype``, ``_sample_param`` and ``_score_on_sample``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from segmint.cluster.base import (
    K_CONSTRAINTS,
    KRange,
    Progress,
    Segmenter,
    profile_ks,
    require_customers,
    sample_rows,
    say,
    segment_means,
    within_sum_of_squares,
)
from segmint.cluster.candidates import Candidates, candidate_row
from segmint.evaluate import metrics
from segmint.evaluate.select_k import Decision, choose_k


@dataclass(frozen=True)
class Sweep:
    """What every candidate of one fit shares."""

    X: np.ndarray  # every row, in the method's ``_dtype``
    fit_idx: np.ndarray  # rows the candidates are fitted on
    sil_idx: np.ndarray  # rows the silhouette is computed on
    fit_rows: np.ndarray  # X[fit_idx]
    sil_rows: np.ndarray  # X[sil_idx]
    prepared: Any  # the method's view of fit_rows (``_prepare``)
    scored: np.ndarray  # rows every candidate is scored on: X, or fit_rows
    tss: float  # total sum of squares of ``scored``
    several: bool  # more than one k is tried


@dataclass
class Candidate:
    """One candidate k, fitted by ``_fit_k``."""

    model: Any  # what ``_finish`` starts from if this k is chosen
    labels: np.ndarray  # labels of ``sweep.scored``
    sil_labels: np.ndarray | None = None  # of ``sweep.sil_idx``; None: labels[sil_idx]
    k: int | None = None  # segments formed, when fewer than asked (ties in a tree)
    inertia: float | None = None  # None: from the segment means
    scores: dict[str, float] = field(default_factory=dict)  # the method's per-k columns


@dataclass
class Final:
    """The chosen k fitted for everyone, in the method's own numbering (``_finish``)."""

    labels: np.ndarray  # of every row
    k: int
    centers: np.ndarray | None = None  # None: the means of the segments' rows
    inertia: float | None = None  # None: from the centres
    model: Any = None  # what ``_keep`` stores


class KSweepSegmenter(Segmenter, ABC):
    """Base of the k-choosing segmenters (module doc). Subclasses take the parameters of
    ``K_CONSTRAINTS`` (``k``, ``k_min``, ``k_max``, ``silhouette_sample``, ``bootstrap``,
    ``min_segment_share`` unless ``_decide`` is overridden, ``random_state``) and the one
    named by ``_sample_param``."""

    _parameter_constraints: dict = {**K_CONSTRAINTS}  # noqa: RUF012 - scikit-learn's convention
    _dtype: ClassVar[type] = np.float32
    _sample_param: ClassVar[str] = "sweep_sample"
    _score_on_sample: ClassVar[bool] = False  # score candidates on the fit rows, not all rows

    # ------------------------------------------------------------ what a method implements

    @abstractmethod
    def _fit_k(self, sweep: Sweep, k: int) -> Candidate:
        """Fit ``k`` segments on ``sweep.fit_rows`` (or ``sweep.prepared``) and label
        ``sweep.scored``."""

    @abstractmethod
    def _finish(self, sweep: Sweep, k: int, model: Any) -> Final:
        """The chosen ``k`` for every row, from the sweep's ``model`` of it."""

    def _check_input(self, X: np.ndarray) -> None:
        """Refuse input the method cannot segment (before anything is fitted)."""

    def _profiles(self, fit_rows: np.ndarray) -> np.ndarray:
        """The fit rows as the method sees them; their distinct rows bound k."""
        return fit_rows

    def _prepare(self, fit_rows: np.ndarray, progress: Progress) -> Any:
        """Work shared by every candidate k (``sweep.prepared``)."""
        return fit_rows

    def _decide(self, table: pd.DataFrame, krange: KRange) -> Decision:
        """Choose k from the candidates' table: the vote of ``evaluate.select_k``."""
        return choose_k(
            table, min_segment_share=self.min_segment_share, fixed=krange.fixed, note=krange.note
        )

    def _keep(self, sweep: Sweep, final: Final, order: np.ndarray) -> None:
        """Record the method's own attributes; segment ``s`` is its own label ``order[s]``."""

    # ------------------------------------------------------------ the skeleton

    def fit(self, X: np.ndarray, y: Any = None, *, progress: Progress = None) -> Self:
        """Sweep the candidate k, choose one, and fit it for every row (module doc)."""
        self._validate_params()
        X = np.ascontiguousarray(X, dtype=self._dtype)
        self._check_input(X)
        require_customers(len(X))
        sweep, krange = self._start(X, progress)
        table, models = self._sweep(sweep, krange.ks, progress)
        decision = self._decide(table, krange)
        table["chosen"] = table["k"] == decision.k
        say(progress, f"final k={decision.k}")
        final = self._finish(sweep, decision.k, models[decision.k])
        labels, order = self._by_size(final.labels, final.k)
        if final.centers is None:
            centers = segment_means(X, labels, final.k)
        else:
            centers = np.asarray(final.centers, dtype=np.float32)[order]
        self._set_fitted(
            labels=labels,
            k=final.k,
            centers=centers,
            inertia=within_sum_of_squares(X, labels, centers)
            if final.inertia is None
            else final.inertia,
            tss=metrics.total_sum_of_squares(X) if self._score_on_sample else sweep.tss,
            selection=table,
            decision=decision,
            n_features=X.shape[1],
        )
        self._keep(sweep, final, order)
        return self

    def _start(self, X: np.ndarray, progress: Progress) -> tuple[Sweep, KRange]:
        """The samples, the candidate k and the method's shared work."""
        n = len(X)
        rng = np.random.default_rng(self.random_state)
        fit_idx = sample_rows(n, getattr(self, self._sample_param), rng)
        sil_idx = sample_rows(n, self.silhouette_sample, rng)
        fit_rows = X[fit_idx]
        krange = profile_ks(self, self._profiles(fit_rows), n)
        prepared = self._prepare(fit_rows, progress)
        scored = fit_rows if self._score_on_sample else X
        sweep = Sweep(
            X=X,
            fit_idx=fit_idx,
            sil_idx=sil_idx,
            fit_rows=fit_rows,
            sil_rows=X[sil_idx],
            prepared=prepared,
            scored=scored,
            tss=metrics.total_sum_of_squares(scored),
            several=len(krange.ks) > 1,
        )
        return sweep, krange

    def _sweep(
        self, sweep: Sweep, ks: list[int], progress: Progress
    ) -> tuple[pd.DataFrame, dict[int, Any]]:
        """Fit and score every candidate k: the selection table and each k's model."""
        cands = Candidates()
        models: dict[int, Any] = {}
        for k in ks:
            say(progress, f"k={k}")
            cand = self._fit_k(sweep, k)
            models[k] = cand.model
            formed = k if cand.k is None else cand.k
            row = candidate_row(sweep.scored, cand.labels, formed, sweep.tss, cand.inertia)
            row["k"] = k
            row.update(cand.scores)
            sil = cand.labels[sweep.sil_idx] if cand.sil_labels is None else cand.sil_labels
            cands.add(row, sil)
        say(progress, "silhouette")
        return cands.table(sweep.sil_rows, self.bootstrap, self.random_state), models
