"""Scores of candidate segmentations: one row per candidate k, the table ``evaluate.select_k``
chooses from and the manifest's ``selection``.

``candidate_row`` scores one labelling of the rows (Calinski–Harabasz, Davies–Bouldin,
inertia, segment shares; noise excluded and counted); ``Candidates`` collects the rows and
adds the silhouette of every candidate in one pass over a sample, with a bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from segmint.cluster.base import segment_means, within_sum_of_squares
from segmint.evaluate import metrics

COLUMNS = ["k", "silhouette", "silhouette_low", "silhouette_high", "calinski_harabasz"]


@dataclass
class Candidates:
    """Scores of candidate segmentations (one row per k), the input of ``choose_k``;
    ``sil_labels`` are each candidate's labels of the silhouette sample."""

    rows: list[dict] = field(default_factory=list)
    sil_labels: list[np.ndarray] = field(default_factory=list)

    def add(self, row: dict, sil_labels: np.ndarray) -> None:
        self.rows.append(row)
        self.sil_labels.append(sil_labels)

    def table(self, X_sil: np.ndarray, bootstrap: int, seed: int) -> pd.DataFrame:
        """The rows with each candidate's silhouette on ``X_sil`` (mean and 95% interval)."""
        for row, vals in zip(
            self.rows, metrics.silhouette_many(X_sil, self.sil_labels), strict=True
        ):
            sil = metrics.bootstrap_mean(vals, bootstrap=bootstrap, seed=seed)
            row.update(silhouette=sil.mean, silhouette_low=sil.low, silhouette_high=sil.high)
        table = pd.DataFrame(self.rows)
        return table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]


def candidate_row(
    X: np.ndarray, labels: np.ndarray, k: int, tss: float, inertia: float | None = None
) -> dict:
    """Calinski–Harabasz, Davies–Bouldin, inertia and segment shares of one labelling of all
    rows (noise, if any, excluded from the criteria and counted)."""
    ok = labels >= 0
    n = len(labels)
    if inertia is None:
        inertia = within_sum_of_squares(X, labels, segment_means(X, labels, k))
    sizes = np.bincount(labels[ok], minlength=k)
    distinct = len(np.unique(labels[ok]))
    return {
        "k": k,
        "calinski_harabasz": metrics.calinski_harabasz_from_inertia(tss, inertia, int(ok.sum()), k)
        if distinct > 1
        else float("nan"),
        "davies_bouldin": metrics.davies_bouldin(X[ok], labels[ok])
        if distinct > 1
        else float("nan"),
        "inertia": inertia,
        "min_segment_share": float(sizes.min() / n) if k else 0.0,
        "min_segment_size": int(sizes.min()) if k else 0,
        "max_segment_share": float(sizes.max() / n) if k else 0.0,
        "noise_share": float((~ok).mean()),
    }
