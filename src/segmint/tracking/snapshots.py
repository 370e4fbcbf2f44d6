"""Segments over time: snapshots, migration between them, and drift.

``track(tx, model, ...)`` computes the customer features at each snapshot date from the order
lines before it (the same ``build_features`` as a run) and gives every customer a segment:

- **assign** (default): the run's fitted model scores every snapshot, so a segment means
  the same thing at every date and IDs are stable by construction;
- **refit**: k-means with the run's k is refitted at each snapshot (in the run's
  preprocessed space, started from the previous snapshot's centres) and its centres are
  matched to the previous ones by the Hungarian algorithm (scipy ``linear_sum_assignment``
  on centre distances), so IDs stay stable where segments persist; on unchanged data the
  refit reproduces the IDs.

Between consecutive snapshots: the migration matrix (customers present at both, plus a
``new`` row for customers whose first purchase falls in between — so every customer at the
later snapshot is counted exactly once), segment sizes and in-period revenue, new customers
and lapsed ones (no purchase for ``lapsed_days`` at the later snapshot but not at the earlier).

Drift: the population stability index of every feature against the previous snapshot
(``PSI = Σ (p − q) ln(p / q)`` over the previous snapshot's deciles; ≥ 0.1 moderate,
≥ 0.25 major — the usual credit-scoring bands) and each segment's centre shift (distance
between its mean preprocessed vector at the two snapshots, in standard-deviation units);
a shift ≥ ``shift_alert`` raises an alert.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from segmint.data.clean_lines import CleanTransactions
from segmint.exceptions import ConfigError, InputError
from segmint.features import build_features
from segmint.model import SegmentationModel
from segmint.preprocess import transform
from segmint.results import Tracking

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
NEW = "new"


def snapshot_dates(
    first: _dt.datetime, end: _dt.datetime, every: str, *, min_history_days: int = 30
) -> list[_dt.datetime]:
    """Period starts (month or quarter) after ``min_history_days`` of history, up to and
    including ``end`` (the run's observation end, which closes the last period)."""
    if every not in {"month", "quarter"}:
        raise ConfigError(
            [f"every must be 'month' or 'quarter', got {every!r}"], settings=("every",)
        )
    freq = "MS" if every == "month" else "QS"
    start = pd.Timestamp(first) + pd.Timedelta(days=min_history_days)
    dates = [d.to_pydatetime() for d in pd.date_range(start, end, freq=freq)]
    if not dates or dates[-1] < end:
        dates.append(end)
    if len(dates) < 2:
        raise InputError(
            f"tracking by {every} needs at least two snapshots; the data run from "
            f"{first.date()} to {end.date()}. Snapshot every month (every) or use more data.",
            code="input.insufficient_history",
            settings=("every",),
        )
    return dates


def psi(previous: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``previous`` (decile bins of
    ``previous``; empty bins get a floor of 1e-4 so the log is defined)."""
    prev = np.asarray(previous, dtype=float)
    cur = np.asarray(current, dtype=float)
    prev, cur = prev[~np.isnan(prev)], cur[~np.isnan(cur)]
    if len(prev) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(prev, np.linspace(0, 1, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, prev, side="right"), minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    p = np.maximum(p / p.sum(), 1e-4)
    q = np.maximum(q / q.sum(), 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_level(value: float) -> str:
    if not np.isfinite(value) or value < PSI_MODERATE:
        return "stable"
    return "moderate" if value < PSI_MAJOR else "major"


def _features_at(tx: CleanTransactions, at: _dt.datetime, model: SegmentationModel) -> pd.DataFrame:
    feats = build_features(
        tx.before(at), None, observation_end=at, categories=model.meta.get("categories")
    )
    return feats.frame


def _match(previous: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``perm[j]`` = the previous segment id that new centre ``j`` takes (Hungarian)."""
    cost = ((centers[:, None, :] - previous[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(centers), dtype=int)
    perm[rows] = cols
    return perm


def track(
    tx: CleanTransactions,
    model: SegmentationModel,
    dates: list[_dt.datetime],
    *,
    refit: bool = False,
    lapsed_days: int = 90,
    shift_alert: float = 0.5,
    seed: int = 0,
) -> Tracking:
    """Segments at every date in ``dates`` with migration, flows and drift (module doc)."""
    features = [*model.numeric, *model.categorical]
    names = list(model.meta.get("segment_names", []))
    k = model.estimator.k
    prev_centers = np.asarray(model.estimator.centers)
    frames: list[pd.DataFrame] = []
    Xs: list[np.ndarray] = []
    numeric_at: list[pd.DataFrame] = []
    shifts: list[dict] = []
    for at in dates:
        frame = _features_at(tx, at, model)
        missing = [c for c in features if c not in frame]
        if missing:
            raise InputError(f"features {missing} cannot be computed at {at.date()}")
        X = transform(model.preprocessor, frame, model.numeric, model.categorical)
        if refit:
            # warm start from the previous centres: continuity, and on unchanged data the
            # refit stays where it is; the Hungarian match still guards against swaps
            km = KMeans(n_clusters=k, init=prev_centers, n_init=1, random_state=seed).fit(X)
            perm = _match(prev_centers, km.cluster_centers_)
            labels = perm[km.labels_]
            centers = np.empty_like(km.cluster_centers_)
            centers[perm] = km.cluster_centers_
            prev_centers = centers
        else:
            labels = model.predict_frame(frame)["segment"].to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": frame["customer_id"].to_numpy(),
                    "snapshot": at,
                    "segment": labels.astype(int),
                    "recency_days": frame["recency_days"].to_numpy(),
                    "monetary": frame["monetary"].to_numpy(),
                }
            )
        )
        Xs.append(X)
        numeric_at.append(frame[model.numeric])
    assignments = pd.concat(frames, ignore_index=True)
    migration, flows_rows, drift_rows, size_rows = [], [], [], []
    for i, at in enumerate(dates):
        cur = frames[i]
        size_rows.append(_sizes(cur, i, frames, at, names))
        if i == 0:
            flows_rows.append(
                dict(snapshot=at, customers=len(cur), new_customers=len(cur), lapsed_customers=0)
            )
            continue
        prev = frames[i - 1]
        migration.append(_migration(prev, cur, dates[i - 1], at))
        merged = prev.merge(cur, on="customer_id", how="right", suffixes=("_p", ""))
        new = merged["segment_p"].isna()
        lapsed = (merged["recency_days"] > lapsed_days) & (merged["recency_days_p"] <= lapsed_days)
        flows_rows.append(
            dict(
                snapshot=at,
                customers=len(cur),
                new_customers=int(new.sum()),
                lapsed_customers=int(lapsed.sum()),
            )
        )
        for f in model.numeric:
            v = psi(numeric_at[i - 1][f].to_numpy(dtype=float), numeric_at[i][f].to_numpy(float))
            drift_rows.append(dict(snapshot=at, feature=f, psi=v, level=psi_level(v)))
        for s in range(k):
            a = Xs[i - 1][prev["segment"].to_numpy() == s]
            b = Xs[i][cur["segment"].to_numpy() == s]
            shift = (
                float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))
                if len(a) and len(b)
                else float("nan")
            )
            shifts.append(
                dict(snapshot=at, segment=s, shift=shift, alert=bool(shift >= shift_alert))
            )
    drift = pd.DataFrame(drift_rows, columns=["snapshot", "feature", "psi", "level"])
    shift_df = pd.DataFrame(shifts, columns=["snapshot", "segment", "shift", "alert"])
    alerts = [
        f"{r.snapshot.date()}: {r.feature} drifted ({r.level}, PSI {r.psi:.2f})"
        for r in drift.itertuples()
        if r.level != "stable"
    ] + [
        f"{r.snapshot.date()}: segment {r.segment} "
        f"({names[r.segment] if r.segment < len(names) else r.segment}) moved "
        f"{r.shift:.2f} sd"
        for r in shift_df.itertuples()
        if r.alert
    ]
    return Tracking(
        snapshots=list(dates),
        assignments=assignments[["customer_id", "snapshot", "segment"]],
        migration=pd.concat(migration, ignore_index=True) if migration else pd.DataFrame(),
        sizes=pd.concat(size_rows, ignore_index=True),
        flows=pd.DataFrame(flows_rows),
        drift=drift,
        shifts=shift_df,
        alerts=alerts,
        mode="refit" if refit else "assign",
        names=names,
    )


def _sizes(
    cur: pd.DataFrame, i: int, frames: list[pd.DataFrame], at: _dt.datetime, names: list[str]
) -> pd.DataFrame:
    """Customers per segment and revenue earned in the period ending at this snapshot."""
    spend = cur.set_index("customer_id")["monetary"]
    if i > 0:
        before = frames[i - 1].set_index("customer_id")["monetary"]
        spend = spend - before.reindex(spend.index).fillna(0.0)
    g = pd.DataFrame({"segment": cur["segment"].to_numpy(), "revenue": spend.to_numpy()})
    out = g.groupby("segment").agg(customers=("revenue", "size"), revenue=("revenue", "sum"))
    out = out.reset_index()
    out.insert(0, "snapshot", at)
    out["segment_name"] = [names[s] if s < len(names) else str(s) for s in out["segment"]]
    return out


def _migration(
    prev: pd.DataFrame, cur: pd.DataFrame, p_at: _dt.datetime, c_at: _dt.datetime
) -> pd.DataFrame:
    m = prev[["customer_id", "segment"]].merge(
        cur[["customer_id", "segment"]], on="customer_id", how="right", suffixes=("_from", "")
    )
    src = m["segment_from"].astype("Int64").astype("string").fillna(NEW)
    counts = (
        pd.DataFrame({"from_segment": src, "to_segment": m["segment"].astype(str)})
        .value_counts()
        .rename("customers")
        .reset_index()
    )
    totals = counts.groupby("from_segment")["customers"].transform("sum")
    counts["share"] = counts["customers"] / totals
    counts.insert(0, "to_snapshot", c_at)
    counts.insert(0, "from_snapshot", p_at)
    return counts.sort_values(["from_segment", "to_segment"], kind="stable").reset_index(drop=True)


def summary(t: Tracking) -> dict[str, Any]:
    """The part of a tracking run worth a manifest."""
    return {
        "mode": t.mode,
        "snapshots": [d.date().isoformat() for d in t.snapshots],
        "customers": t.flows["customers"].tolist(),
        "alerts": t.alerts,
        "psi_bands": {"moderate": PSI_MODERATE, "major": PSI_MAJOR},
    }
