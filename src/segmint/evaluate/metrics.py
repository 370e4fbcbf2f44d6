"""Cluster quality metrics that stay linear in the number of customers.

Silhouette is O(n²), so it is computed on a sample with a matrix-product kernel (one BLAS
call per block instead of scikit-learn's per-row distance loops, ~30× faster at 10k rows)
and reported with a bootstrap confidence interval over the sampled customers.
Calinski–Harabasz comes from the inertia that k-means already gives; Davies–Bouldin is
linear and runs on all rows (written here with per-column ``bincount`` sums: scikit-learn's
version builds a distance matrix per cluster and took 2.5x as long at 1M customers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import pairwise_distances_argmin_min

_BLOCK = 1024


def silhouette_values(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row silhouette, equal to ``sklearn.metrics.silhouette_samples`` (euclidean).

    Parameters
    ----------
    X : ndarray, shape (n, d)
    labels : ndarray of int, shape (n,)

    Returns
    -------
    ndarray, shape (n,) — 0 for members of singleton clusters, as in scikit-learn.
    """
    return silhouette_many(X, [labels])[0]


def silhouette_many(X: np.ndarray, labelings: list[np.ndarray]) -> list[np.ndarray]:
    """Per-row silhouettes for several labelings of the same rows in one pass.

    The pairwise distances are the expensive part and do not depend on the labels, so each
    block of distances is multiplied by the one-hot matrices of all labelings side by side:
    a k = 2..10 sweep costs about one silhouette instead of nine.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    codes, offsets, ks = [], [0], []
    for labels in labelings:
        uniq, lab = np.unique(labels, return_inverse=True)
        codes.append(lab)
        ks.append(len(uniq))
        offsets.append(offsets[-1] + len(uniq))
    onehot = np.zeros((n, offsets[-1]))
    for lab, off in zip(codes, offsets, strict=False):
        onehot[np.arange(n), off + lab] = 1.0
    sq = np.einsum("ij,ij->i", X, X)
    sums = np.empty((n, offsets[-1]))
    for s in range(0, n, _BLOCK):
        e = min(s + _BLOCK, n)
        d2 = X[s:e] @ X.T  # in place from here: no block-sized temporaries
        d2 *= -2.0
        d2 += sq[s:e, None]
        d2 += sq[None, :]
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(e - s), np.arange(s, e)] = 0.0
        sums[s:e] = np.sqrt(d2, out=d2) @ onehot
    out = []
    rows = np.arange(n)
    for lab, off, k in zip(codes, offsets, ks, strict=False):
        if k < 2:
            out.append(np.zeros(n))
            continue
        block = sums[:, off : off + k]
        counts = onehot[:, off : off + k].sum(axis=0)
        own = counts[lab]
        a = block[rows, lab] / np.maximum(own - 1, 1)
        mean_other = block / counts
        mean_other[rows, lab] = np.inf
        b = mean_other.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s_val = (b - a) / np.maximum(a, b)
        s_val[own == 1] = 0.0
        out.append(np.nan_to_num(s_val))
    return out


@dataclass
class Silhouette:
    mean: float
    low: float
    high: float
    n: int


def bootstrap_mean(values: np.ndarray, *, bootstrap: int, seed: int) -> Silhouette:
    """Mean of ``values`` with a 95% percentile bootstrap interval (seeded: the same
    resamples for every call with the same seed, so intervals of different k are paired)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    boots = np.empty(bootstrap)
    for b in range(bootstrap):
        boots[b] = values[rng.integers(0, n, n)].mean()
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Silhouette(float(values.mean()), float(lo), float(hi), n)


def sampled_silhouette(
    X: np.ndarray, labels: np.ndarray, idx: np.ndarray, *, bootstrap: int, seed: int
) -> Silhouette:
    """Silhouette of the rows ``idx`` with a 95% percentile bootstrap interval."""
    vals = silhouette_values(X[idx], labels[idx])
    return bootstrap_mean(vals, bootstrap=bootstrap, seed=seed)


def total_sum_of_squares(X: np.ndarray) -> float:
    mu = X.mean(axis=0, dtype=np.float64)
    tss = 0.0
    for s in range(0, len(X), 262_144):
        d = X[s : s + 262_144].astype(np.float64) - mu
        tss += float(np.einsum("ij,ij->", d, d))
    return tss


def calinski_harabasz_from_inertia(tss: float, inertia: float, n: int, k: int) -> float:
    """CH = [(TSS − W)/(k − 1)] / [W/(n − k)], with W the within-cluster sum of squares."""
    if k < 2 or n <= k or inertia <= 0:
        return float("nan")
    return ((tss - inertia) / (k - 1)) / (inertia / (n - k))


def assign(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, float]:
    """Nearest-centre labels for all rows and the resulting inertia (chunked, O(n·k·d))."""
    labels, dist = pairwise_distances_argmin_min(X, centers.astype(X.dtype))
    return labels, float(np.square(dist, dtype=np.float64).sum())


def group_sums(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-label column sums, shape (k, d), for labels in 0..k-1 (float64 accumulation;
    one ``bincount`` per column is ~20x faster than ``np.add.at``)."""
    return np.stack(
        [np.bincount(labels, weights=X[:, j], minlength=k) for j in range(X.shape[1])], axis=1
    ).reshape(k, X.shape[1])


def davies_bouldin(X: np.ndarray, labels: np.ndarray) -> float:
    """Davies–Bouldin index (as scikit-learn defines it) over the labels present."""
    present = np.bincount(labels)
    codes = np.cumsum(present > 0) - 1
    lab = codes[labels]
    k = int(codes[-1]) + 1
    if k < 2:
        return float("nan")
    counts = present[present > 0].astype(np.float64)
    centers = group_sums(X, lab, k) / counts[:, None]
    spread = np.zeros(k)
    c32 = centers.astype(X.dtype)
    for s in range(0, len(X), 65_536):
        part = lab[s : s + 65_536]
        d = X[s : s + 65_536] - c32[part]
        spread += np.bincount(part, weights=np.sqrt(np.einsum("ij,ij->i", d, d)), minlength=k)
    spread /= counts
    gaps = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
    if np.allclose(spread, 0) or np.allclose(gaps, 0):
        return 0.0
    gaps[gaps == 0] = np.inf
    ratio = (spread[:, None] + spread[None, :]) / gaps
    return float(np.max(ratio, axis=1).mean())


def knee(ks: list[int], inertia: list[float]) -> int | None:
    """Elbow of a decreasing inertia curve: the point farthest below the end-to-end chord.

    This is the Kneedle idea for a convex decreasing curve in a few lines; a dependency for
    it would cost more than it saves.
    """
    if len(ks) < 3:
        return None
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertia, dtype=float)
    xr, yr = x.max() - x.min(), y.max() - y.min()
    if xr == 0 or yr == 0:
        return None
    xn = (x - x.min()) / xr
    yn = (y - y.min()) / yr
    dist = (1.0 - xn) - yn
    i = int(np.argmax(dist))
    return int(ks[i]) if dist[i] > 0.01 else None
