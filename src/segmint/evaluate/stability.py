"""Does a segmentation survive resampling? Bootstrap stability, overall and per segment.

The same algorithm, with the chosen k fixed (density methods: the fitted ``eps`` and
``min_samples``), is refitted ``runs`` times on random subsamples (80% of an evaluation
sample of at most ``sample`` customers, drawn without replacement). Each refit labels the
whole evaluation sample through its own ``predict``, and is compared with the reference
segmentation on it:

- **overall**: the adjusted Rand index (1 = the same partition, 0 = chance);
- **per k** (``stability_per_k``): for every candidate k, the agreement of two refits on
  different subsamples, so the k-selection table shows which k are reproducible at all;
- **per segment**: the Jaccard similarity of each reference segment with its best-matching
  refit segment (Hennig 2007, "cluster-wise stability"). A segment whose mean Jaccard is
  below ``UNSTABLE`` (0.6; Hennig: ≤ 0.5 dissolved, 0.6–0.75 a pattern, > 0.85 highly
  stable) is marked unstable in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

UNSTABLE = 0.6


@dataclass
class Stability:
    """``ari``: mean adjusted Rand index over refits (and each refit's in ``ari_runs``);
    ``segments``: segment, jaccard (mean), jaccard_min, unstable."""

    ari: float
    ari_runs: list[float]
    segments: pd.DataFrame
    runs: int
    sample: int


def jaccard_per_segment(ref: np.ndarray, new: np.ndarray, k: int) -> np.ndarray:
    """Best-match Jaccard of each reference segment 0..k-1 within ``new`` (noise ignored)."""
    out = np.zeros(k)
    new_ids = np.unique(new[new >= 0])
    for s in range(k):
        a = ref == s
        if not a.any():
            continue
        best = 0.0
        for t in new_ids:
            b = new == t
            inter = np.count_nonzero(a & b)
            if inter:
                best = max(best, inter / np.count_nonzero(a | b))
        out[s] = best
    return out


def bootstrap_stability(
    make: Callable[[], Any],
    X: np.ndarray,
    labels: np.ndarray,
    k: int,
    *,
    runs: int = 5,
    sample: int = 5000,
    share: float = 0.8,
    seed: int = 0,
) -> Stability:
    """Refit ``make()`` (an unfitted segmenter with k fixed) on subsamples; see module doc."""
    rng = np.random.default_rng(seed)
    n = len(X)
    ev = np.arange(n) if n <= sample else np.sort(rng.choice(n, sample, replace=False))
    Xe, ref = X[ev], labels[ev]
    aris, jac = [], []
    for _ in range(runs):
        sub = np.sort(rng.choice(len(ev), max(int(share * len(ev)), 10), replace=False))
        seg = make().fit(Xe[sub])
        new = seg.predict(Xe)
        aris.append(float(adjusted_rand_score(ref, new)))
        jac.append(jaccard_per_segment(ref, new, k))
    J = np.vstack(jac)
    segments = pd.DataFrame(
        {
            "segment": np.arange(k),
            "jaccard": J.mean(axis=0),
            "jaccard_min": J.min(axis=0),
        }
    )
    segments["unstable"] = segments["jaccard"] < UNSTABLE
    return Stability(
        ari=float(np.mean(aris)), ari_runs=aris, segments=segments, runs=runs, sample=len(ev)
    )


def stability_per_k(
    make: Callable[[int, int], Any],
    X: np.ndarray,
    ks: list[int],
    *,
    runs: int = 3,
    sample: int = 3000,
    share: float = 0.8,
    seed: int = 0,
) -> dict[int, float]:
    """For each candidate k: fit two segmentations on two random subsamples, label a common
    evaluation sample with both, and average their adjusted Rand index over ``runs`` pairs
    (Ben-Hur, Elisseeff & Guyon 2002). ``make(k, seed)`` returns an unfitted segmenter."""
    rng = np.random.default_rng(seed)
    n = len(X)
    ev = np.arange(n) if n <= sample else np.sort(rng.choice(n, sample, replace=False))
    Xe = X[ev]
    m = len(ev)
    out: dict[int, float] = {}
    for k in ks:
        scores = []
        for r in range(runs):
            a, b = (np.sort(rng.choice(m, max(int(share * m), k + 1), replace=False)) for _ in "ab")
            la = make(k, seed + 2 * r + 1).fit(Xe[a]).predict(Xe)
            lb = make(k, seed + 2 * r + 2).fit(Xe[b]).predict(Xe)
            scores.append(adjusted_rand_score(la, lb))
        out[k] = float(np.mean(scores))
    return out
