"""Segment profiles: size, revenue share, feature means/medians, standardized differences
(segment mean minus base mean, in base standard deviations), top categories, the RFM
segment most of a segment's customers fall in and the RFM cell of its mean scores. With CLV
columns: ``clv_total`` (sum of predicted CLV) and ``value_at_risk`` (past spend weighted by
the probability that the customer has already left, 1 − P(alive)).
Names and words are ``personas``' job."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmint.features.rfm import rfm_name


def profile_segments(
    frame: pd.DataFrame,
    labels: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    *,
    revenue: str | None = "monetary",
    also_numeric: list[str] | None = None,
) -> pd.DataFrame:
    """One row per segment (``segment`` ascending) with sizes, shares and statistics.

    ``numeric`` and ``categorical`` are the segmentation features; ``also_numeric`` columns
    (descriptive features) are profiled the same way.
    """
    df = frame.assign(segment=labels)
    n = len(df)
    g = df.groupby("segment", sort=True)
    out = pd.DataFrame({"size": g.size()})
    out["share_customers"] = out["size"] / n
    if revenue and revenue in df:
        total = df[revenue].sum()
        out["revenue"] = g[revenue].sum()
        out["share_revenue"] = out["revenue"] / total if total else np.nan
    for c in [*numeric, *(also_numeric or [])]:
        col = pd.to_numeric(df[c], errors="coerce")
        mu, sd = col.mean(), col.std(ddof=0)
        means = g[c].mean()
        out[f"mean_{c}"] = means
        out[f"median_{c}"] = g[c].median()
        out[f"z_{c}"] = (means - mu) / sd if sd and sd > 0 else 0.0
    for c in categorical:
        top = g[c].agg(lambda s: s.mode(dropna=True).iloc[0] if s.notna().any() else None)
        share = g[c].agg(
            lambda s: (s == s.mode(dropna=True).iloc[0]).mean() if s.notna().any() else 0
        )
        out[f"top_{c}"] = top
        out[f"top_share_{c}"] = share
    if {"clv", "p_alive"} <= set(df.columns):
        out["clv_total"] = g["clv"].sum()
        at_risk = (1 - df["p_alive"]) * df[revenue] if revenue and revenue in df else None
        if at_risk is not None:
            out["value_at_risk"] = at_risk.groupby(df["segment"]).sum()
    if "churn_probability" in df:
        out["expected_churn_rate"] = g["churn_probability"].mean()
    if "rfm_segment" in df:
        out["top_rfm_segment"] = g["rfm_segment"].agg(lambda s: s.mode().iloc[0])
        out["top_rfm_share"] = g["rfm_segment"].agg(lambda s: (s == s.mode().iloc[0]).mean())
    if {"r_score", "f_score", "m_score"} <= set(df.columns):
        r = g["r_score"].mean()
        fm = (g["f_score"].mean() + g["m_score"].mean()) / 2
        out["rfm_cell"] = [rfm_name(a, b) for a, b in zip(r, fm, strict=True)]
    return out.reset_index()
