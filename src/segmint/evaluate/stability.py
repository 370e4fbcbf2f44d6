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

Small data: a subsample must be smaller than the evaluation sample (else every refit sees the
same customers and agreement measures only the seed) and still hold k segments of
``MIN_SEGMENT_CUSTOMERS`` customers (``select_k``), so it has ``max(80%, 2k)`` customers.
When that is not smaller than the sample (e.g. 5 customers in 2 segments), stability is
undefined: NaN, with the reason in ``note``, never a made-up number. A refit that refuses
(a domain error, e.g. a density method finding a single group, or a subsample with fewer
distinct customers than k) is counted in ``failed`` and left out; if every refit refuses,
stability is undefined too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from segmint.evaluate.select_k import MIN_SEGMENT_CUSTOMERS
from segmint.exceptions import SegmintError

UNSTABLE = 0.6


@dataclass
class Stability:
    """``ari``: mean adjusted Rand index over refits (and each refit's in ``ari_runs``);
    ``segments``: segment, jaccard (mean), jaccard_min, unstable. ``ari`` and the Jaccards
    are NaN when stability is undefined on these data, and ``note`` says why; ``failed``
    counts refits that refused."""

    ari: float
    ari_runs: list[float]
    segments: pd.DataFrame
    runs: int
    sample: int
    failed: int = 0
    note: str = ""


def subsample_size(m: int, k: int, share: float) -> int | None:
    """Customers in each refit's subsample of ``m``: ``share`` of them, at least 10 and at
    least ``MIN_SEGMENT_CUSTOMERS`` per segment; None when that leaves nothing out."""
    size = max(int(share * m), min(10, m - 1), MIN_SEGMENT_CUSTOMERS * k)
    return size if size < m else None


def _undefined(k: int, runs: int, sample: int, note: str, failed: int = 0) -> Stability:
    nan = np.full(k, np.nan)
    segments = pd.DataFrame(
        {"segment": np.arange(k), "jaccard": nan, "jaccard_min": nan, "unstable": False}
    )
    return Stability(float("nan"), [], segments, runs, sample, failed, note)


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
    size = subsample_size(len(ev), k, share)
    if size is None:
        return _undefined(
            k,
            runs,
            len(ev),
            f"stability is undefined: {len(ev)} customers leave no subsample smaller than "
            f"them that still holds {k} segments of {MIN_SEGMENT_CUSTOMERS} customers",
        )
    aris, jac, refused = [], [], []
    for _ in range(runs):
        sub = np.sort(rng.choice(len(ev), size, replace=False))
        try:
            seg = make().fit(Xe[sub])
        except SegmintError as exc:  # the method cannot segment this subsample: a fact
            refused.append(str(exc))
            continue
        new = seg.predict(Xe)
        aris.append(float(adjusted_rand_score(ref, new)))
        jac.append(jaccard_per_segment(ref, new, k))
    if not aris:
        return _undefined(
            k,
            runs,
            len(ev),
            f"stability is undefined: every refit on a {size}-customer subsample refused "
            f"({refused[0]})",
            failed=len(refused),
        )
    J = np.vstack(jac)
    segments = pd.DataFrame(
        {
            "segment": np.arange(k),
            "jaccard": J.mean(axis=0),
            "jaccard_min": J.min(axis=0),
        }
    )
    segments["unstable"] = segments["jaccard"] < UNSTABLE
    note = (
        f"{len(refused)} of {runs} refits refused and are left out ({refused[0]})"
        if refused
        else ""
    )
    return Stability(
        ari=float(np.mean(aris)),
        ari_runs=aris,
        segments=segments,
        runs=runs,
        sample=len(ev),
        failed=len(refused),
        note=note,
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
    (Ben-Hur, Elisseeff & Guyon 2002). ``make(k, seed)`` returns an unfitted segmenter.
    NaN for a k whose subsamples cannot hold k segments or whose refits all refuse."""
    rng = np.random.default_rng(seed)
    n = len(X)
    ev = np.arange(n) if n <= sample else np.sort(rng.choice(n, sample, replace=False))
    Xe = X[ev]
    m = len(ev)
    out: dict[int, float] = {}
    for k in ks:
        size = subsample_size(m, k, share)
        scores = []
        for r in range(runs if size else 0):
            a, b = (np.sort(rng.choice(m, size, replace=False)) for _ in "ab")
            try:
                la = make(k, seed + 2 * r + 1).fit(Xe[a]).predict(Xe)
                lb = make(k, seed + 2 * r + 2).fit(Xe[b]).predict(Xe)
            except SegmintError:  # this k cannot be refitted on a subsample: no score
                continue
            scores.append(adjusted_rand_score(la, lb))
        out[k] = float(np.mean(scores)) if scores else float("nan")  # NaN: undefined
    return out
