"""Unusual customers: an anomaly score per customer, and the top ones with reasons.

Signals, each turned into a percentile rank in [0, 1] so they can be averaged:

- Isolation Forest (scikit-learn) on the preprocessed matrix: how easily a customer is
  isolated by random splits. Always present.
- Distance to the customer's own segment centre, ranked *within* the segment (centroid
  methods): a customer far from everyone like them.
- Density noise (``segment == -1`` from DBSCAN/HDBSCAN) and low mixture likelihood
  (Gaussian mixtures) when those methods ran: passed in as extra signals.

The combined score is the mean of the available signals. A customer is *flagged* when its
Isolation Forest score (Liu et al. 2008; in (0, 1]) exceeds ``threshold`` or it is density
noise; the flagged count goes to the manifest. The paper's 0.5 flags 10% of Online Retail's
customers and 15% of synthetic ones, too many to act on; the default 0.6 flags 1.3% and 0.2%.
Reasons are read from the original features: which are beyond the 1st/99th percentile of the
base, and where.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.ensemble import IsolationForest

EXTREME = 0.01  # below the 1st or above the 99th percentile


@dataclass
class Anomalies:
    """``scores``: per customer (``anomaly_score``, ``is_anomaly``), in input order;
    ``top``: the most anomalous customers with ``reasons``; ``flagged``: how many."""

    scores: pd.DataFrame
    top: pd.DataFrame
    flagged: int
    signals: list[str]


def _score(forest: IsolationForest, X: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """``score_samples`` in chunks on a thread pool: scikit-learn scores on one core, and the
    tree traversal releases the GIL (1M customers: 3.1 s → 1.6 s on 2 cores)."""
    if len(X) <= chunk:
        return forest.score_samples(X)
    bounds = range(0, len(X), chunk)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = pool.map(lambda i: forest.score_samples(X[i : i + chunk]), bounds)
        return np.concatenate(list(parts))


def _pct(x: np.ndarray) -> np.ndarray:
    return (rankdata(x, method="average") - 0.5) / len(x)


def _within_group_pct(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.empty(len(values))
    for g in np.unique(groups):
        ix = np.flatnonzero(groups == g)
        out[ix] = _pct(values[ix])
    return out


def detect_anomalies(
    X: np.ndarray,
    frame: pd.DataFrame,
    labels: np.ndarray,
    numeric: list[str],
    *,
    centers: np.ndarray | None = None,
    log_likelihood: np.ndarray | None = None,
    top: int = 50,
    threshold: float = 0.6,
    fit_sample: int = 100_000,
    seed: int = 0,
) -> Anomalies:
    """Score every customer and explain the ``top`` most anomalous.

    Parameters
    ----------
    X : array, shape (n_customers, n_columns)
        The preprocessed matrix the segmentation used.
    frame : DataFrame, shape (n_customers, ...)
        ``customer_id`` and the original ``numeric`` features, same row order as ``X``.
    centers : array, shape (k, n_columns), optional
        Segment centres; adds the distance-to-own-centre signal.
    log_likelihood : array, shape (n_customers,), optional
        Per-customer mixture log-likelihood; adds the low-likelihood signal.
    """
    n = len(X)
    rng = np.random.default_rng(seed)
    forest = IsolationForest(n_estimators=100, random_state=seed)
    fit_idx = np.arange(n) if n <= fit_sample else rng.choice(n, fit_sample, replace=False)
    forest.fit(X[fit_idx])
    iso = -_score(forest, X)  # the paper's anomaly score: higher = more anomalous
    signals = {"isolation_forest": _pct(iso)}
    labels = np.asarray(labels)
    if centers is not None:
        own = centers[np.clip(labels, 0, None)]
        dist = np.sqrt(((X - own) ** 2).sum(axis=1))
        if (labels < 0).any():
            dist[labels < 0] = np.inf
        signals["distance_to_centre"] = _within_group_pct(dist, labels)
    if log_likelihood is not None:
        signals["low_likelihood"] = _pct(-np.asarray(log_likelihood, dtype=float))
    noise = labels < 0
    if noise.any():
        signals["density_noise"] = noise.astype(float)
    score = np.mean(np.column_stack(list(signals.values())), axis=1)
    flag = (iso > threshold) | noise
    ids = frame["customer_id"].to_numpy()
    scores = pd.DataFrame({"anomaly_score": score, "is_anomaly": flag})
    order = np.argsort(-score, kind="stable")[: min(top, n)]
    rows = []
    sorted_cols = {
        c: np.sort(pd.to_numeric(frame[c], errors="coerce").dropna().to_numpy(dtype=float))
        for c in numeric
    }
    for i in order:
        reasons = []
        for c, col in sorted_cols.items():
            v = pd.to_numeric(pd.Series([frame[c].iloc[i]]), errors="coerce").iloc[0]
            if pd.isna(v) or not len(col):
                continue
            lo = np.searchsorted(col, v, side="left")
            hi = np.searchsorted(col, v, side="right")
            pct = (lo + hi) / 2 / len(col)
            if pct >= 1 - EXTREME or pct <= EXTREME:
                reasons.append((abs(pct - 0.5), f"{c} = {_num(v)} ({_ordinal(pct)})"))
        reasons.sort(key=lambda r: -r[0])
        text = "; ".join(r for _, r in reasons[:4])
        if noise[i]:
            text = "density noise: no dense group nearby" + (f"; {text}" if text else "")
        if not text:
            text = "unusual combination of otherwise ordinary values"
        rows.append(
            dict(
                customer_id=ids[i],
                segment=int(labels[i]),
                anomaly_score=float(score[i]),
                isolation_score=float(iso[i]),
                is_anomaly=bool(flag[i]),
                reasons=text,
            )
        )
    top_df = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "segment",
            "anomaly_score",
            "isolation_score",
            "is_anomaly",
            "reasons",
        ],
    )
    return Anomalies(scores=scores, top=top_df, flagged=int(flag.sum()), signals=list(signals))


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def _ordinal(pct: float) -> str:
    """Where a value sits: 'top 0.3%' / 'bottom 1%' of customers."""
    tail = max(1 - pct if pct >= 0.5 else pct, 0.001)
    return f"{'top' if pct >= 0.5 else 'bottom'} {100 * tail:.2g}%"
