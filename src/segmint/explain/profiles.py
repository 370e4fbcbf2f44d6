"""Segment profiles: size, revenue share, feature means/medians, standardized differences,
a descriptive name derived from the data and a suggested marketing action.

Names are deterministic: order-line segments take the RFM segment most of their customers
fall in (Champions, At Risk, ...) plus the trait that sets them apart most; attribute-only
segments are named by their two strongest traits ("High income · low spending score").
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Words for a feature being clearly above / below the base (|standardized difference| ≥ 0.3).
TRAITS: dict[str, tuple[str, str]] = {
    "recency_days": ("lapsed", "recent"),
    "frequency": ("frequent", "infrequent"),
    "monetary": ("high spend", "low spend"),
    "avg_order_value": ("big orders", "small orders"),
    "tenure_days": ("long-standing", "newly acquired"),
    "mean_interpurchase_days": ("long gaps", "short gaps"),
    "regularity": ("regular", "irregular"),
    "return_rate": ("high returns", "few returns"),
    "distinct_products": ("broad range", "narrow range"),
    "avg_basket_items": ("large baskets", "small baskets"),
    "share_weekend": ("weekend shoppers", "weekday shoppers"),
    "share_q1": ("Q1-heavy", "light in Q1"),
    "share_q2": ("Q2-heavy", "light in Q2"),
    "share_q3": ("Q3-heavy", "light in Q3"),
    "share_q4": ("Q4 / holiday buyers", "light in Q4"),
}
MIN_EFFECT = 0.3

ACTIONS: dict[str, str] = {
    "Champions": "Reward: loyalty perks, early access and referral asks; no discounts needed.",
    "Loyal": "Upsell and cross-sell higher-value ranges; invite to the loyalty programme.",
    "Potential Loyalist": "Nurture to a second and third order: membership offer, recommendations.",
    "New": "Onboard: welcome series, first-repeat incentive, best-seller guidance.",
    "Promising": "Build habit: personalised recommendations and a small repeat-purchase offer.",
    "Need Attention": "Re-engage with limited-time, personalised offers based on past purchases.",
    "About to Sleep": "Reactivate before they lapse: reminders, popular products, mild discount.",
    "At Risk": "Win back: personalised reminder plus a time-limited discount; ask for feedback.",
    "Can't Lose": "Win back urgently: high-touch outreach and the strongest offer; find out why.",
    "Hibernating": "Low-cost reactivation (email only) with relevant offers; suppress if silent.",
    "Lost": "Minimal spend: one last win-back campaign, then exclude from paid channels.",
}
_VALUE_WORDS = re.compile(r"spend|score|mnt|monetary|income|revenue|value|amount", re.I)


def profile_segments(
    frame: pd.DataFrame,
    labels: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    *,
    revenue: str | None = "monetary",
    also_numeric: list[str] | None = None,
) -> pd.DataFrame:
    """One row per segment (``segment`` ascending) with sizes, shares, stats and a name.

    ``numeric`` and ``categorical`` are the segmentation features (they name the segments);
    ``also_numeric`` columns are profiled too but do not take part in naming.
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
    z = pd.DataFrame(index=out.index)
    for c in [*numeric, *(also_numeric or [])]:
        col = pd.to_numeric(df[c], errors="coerce")
        mu, sd = col.mean(), col.std(ddof=0)
        means = g[c].mean()
        out[f"mean_{c}"] = means
        out[f"median_{c}"] = g[c].median()
        z[c] = (means - mu) / sd if sd and sd > 0 else 0.0
        out[f"z_{c}"] = z[c]
    for c in categorical:
        top = g[c].agg(lambda s: s.mode(dropna=True).iloc[0] if s.notna().any() else None)
        share = g[c].agg(
            lambda s: (s == s.mode(dropna=True).iloc[0]).mean() if s.notna().any() else 0
        )
        out[f"top_{c}"] = top
        out[f"top_share_{c}"] = share
    rfm = g["rfm_segment"].agg(lambda s: s.mode().iloc[0]) if "rfm_segment" in df else None
    names, actions = _names_and_actions(z[numeric], rfm, out, categorical)
    out.insert(0, "segment_name", names)
    out.insert(1, "action", actions)
    return out.reset_index()


def _trait(feature: str, zval: float) -> str:
    hi, lo = TRAITS.get(feature, (None, None))
    if feature.startswith("share_") and feature not in TRAITS:
        label = feature.split("_", 2)[-1].replace("_", " ")
        hi, lo = (f"buys {label}", f"rarely buys {label}")
    if hi is None:
        label = feature.replace("_", " ").strip()
        hi, lo = (f"high {label}", f"low {label}")
    return hi if zval > 0 else lo


def _ranked_traits(zrow: pd.Series, exclude: set[str]) -> list[str]:
    ranked = (
        zrow.drop(labels=[c for c in exclude if c in zrow.index])
        .abs()
        .sort_values(ascending=False, kind="stable")
    )
    return [_trait(f, zrow[f]) for f in ranked.index if abs(zrow[f]) >= MIN_EFFECT]


def _names_and_actions(
    z: pd.DataFrame, rfm: pd.Series | None, out: pd.DataFrame, categorical: list[str]
) -> tuple[list[str], list[str]]:
    names, actions = [], []
    for seg in z.index:
        zrow = z.loc[seg]
        if rfm is not None:
            base = str(rfm.loc[seg])
            traits = _ranked_traits(zrow, {"recency_days", "frequency", "monetary"})
            parts = [base, *traits[:1]]
            action = ACTIONS.get(base, "")
        else:
            traits = _ranked_traits(zrow, set())
            if not traits and categorical:
                traits = [str(out.loc[seg, f"top_{c}"]) for c in categorical[:2]]
            parts = [t[:1].upper() + t[1:] if i == 0 else t for i, t in enumerate(traits[:2])] or [
                "Typical customers"
            ]
            action = _attribute_action(zrow)
        names.append(" · ".join(parts))
        actions.append(action)
    return _unique(names, z, rfm), actions


def _attribute_action(zrow: pd.Series) -> str:
    value = [c for c in zrow.index if _VALUE_WORDS.search(c)]
    if not value:
        return "Test a tailored message against a control group to learn what moves this group."
    v = float(np.mean([zrow[c] for c in value]))
    if v >= MIN_EFFECT:
        return "Retain and grow: premium ranges, loyalty benefits, personal service."
    if v <= -MIN_EFFECT:
        return "Activate on value: entry-price offers, bundles, and low-cost channels."
    return "Nurture: relevant recommendations and a modest incentive to raise engagement."


def _unique(names: list[str], z: pd.DataFrame, rfm: pd.Series | None) -> list[str]:
    """Make names unique by adding the next distinguishing trait, then a number."""
    result = list(names)
    for _ in range(3):
        dupes = {n for n in result if result.count(n) > 1}
        if not dupes:
            return result
        for i, seg in enumerate(z.index):
            if result[i] in dupes:
                traits = _ranked_traits(z.loc[seg], set())
                extra = next((t for t in traits if t not in result[i]), None)
                if extra:
                    result[i] = f"{result[i]} · {extra}"
    seen: dict[str, int] = {}
    for i, n in enumerate(result):
        if result.count(n) > 1:
            seen[n] = seen.get(n, 0) + 1
            result[i] = f"{n} ({seen[n]})"
    return result
