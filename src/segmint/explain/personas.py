"""Personas: a name, a description grounded in the segment's numbers, what sets it apart,
a marketing strategy, the KPI to watch and the revenue at stake — by documented rules.

Rules (deterministic, no external service; every threshold is in ``Personas`` settings):

1. **Archetype.** With order lines, the RFM segment most of the segment's customers fall in
   (Champions … Lost) when it holds at least ``min_rfm_share`` of them; otherwise (a mixed
   segment) the RFM cell of the segment's mean R and mean FM scores. With attributes only,
   the value level: mean standardized difference of value-like columns (spend, income,
   score, monetary…) ≥ ``min_effect`` → "High value", ≤ −``min_effect`` → "Low value", else
   "Mid value"; no value-like column → "Unrated".
2. **Name.** The archetype (order lines) plus the strongest other trait, or the two strongest
   traits (attributes). Names are made unique by adding the next trait.
3. **Distinguishing features.** Features whose segment mean differs from the base by at least
   ``min_effect`` standard deviations *and* whose difference across segments is significant
   after Holm correction with at least a small effect (``explain.stats``).
   Density methods' noise customers (segment -1) are the "Outliers" persona.
4. **Strategy and KPI.** From the archetype's row of ``STRATEGIES`` (channel, offer, discount
   depth, message, KPI); any field can be overridden per archetype in the settings.
5. **Value.** A customer is *overdue* when days since the last order exceed ``overdue_factor``
   × their own mean gap between orders (the base's median gap for one-order customers).
   ``revenue_at_stake`` is the spend of a segment's overdue customers. A customer is *active*
   when not overdue and more recent than the base's median recency; ``growth_potential`` is
   what a segment's active below-median spenders would add by reaching the base median spend.

Every number in a description is a column of ``segments.csv``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from segmint.config import STRATEGY_FIELDS, Personas
from segmint.explain.stats import GroupTests

# the name of the customers no segment takes (noise, segment -1)
NOISE_NAME = "Outliers"


# Words for a feature being clearly above / below the base.
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


def _s(channel: str, offer: str, discount: str, message: str, kpi: str) -> dict[str, str]:
    return dict(channel=channel, offer=offer, discount=discount, message=message, kpi=kpi)


STRATEGIES: dict[str, dict[str, str]] = {
    "Champions": _s(
        "app and personal email",
        "early access, loyalty perks, referral rewards",
        "none",
        "Thank you: first look at what is new",
        "retention rate and order frequency",
    ),
    "Loyal": _s(
        "email and app",
        "cross-sell higher-value ranges; loyalty tier upgrade",
        "0–5%",
        "Picked for you, based on what you love",
        "average order value",
    ),
    "Potential Loyalist": _s(
        "email",
        "membership or subscription offer; recommendations",
        "5–10%",
        "Join and save on every order",
        "repeat-purchase rate",
    ),
    "New": _s(
        "welcome email series",
        "second-order incentive; best-seller guide",
        "10%",
        "Welcome: here is what customers like you love",
        "second-order conversion within 60 days",
    ),
    "Promising": _s(
        "email and retargeting ads",
        "personalised recommendations; small repeat offer",
        "5–10%",
        "More of what you liked",
        "order frequency",
    ),
    "Need Attention": _s(
        "email and retargeting ads",
        "limited-time personalised offer",
        "10%",
        "We saved these for you, for a few days only",
        "reactivation within 30 days",
    ),
    "About to Sleep": _s(
        "email",
        "reminder of popular products; mild discount",
        "10–15%",
        "It has been a while: here is what is new",
        "reactivation rate",
    ),
    "At Risk": _s(
        "email and direct mail",
        "personalised win-back; ask for feedback",
        "15–20%",
        "We miss you: a special offer on your favourites",
        "win-back rate and revenue recovered",
    ),
    "Can't Lose": _s(
        "personal outreach (phone or account manager) and direct mail",
        "strongest win-back offer; find out why they left",
        "20–25%",
        "You matter to us: let us make it right",
        "revenue at stake recovered",
    ),
    "Hibernating": _s(
        "email only",
        "relevant low-cost offers; suppress if silent",
        "10%",
        "Still interested? Here is something for you",
        "reactivation rate against campaign cost",
    ),
    "Lost": _s(
        "email only, one campaign",
        "last-chance win-back, then exclude from paid channels",
        "15–20%",
        "One last offer before we say goodbye",
        "reactivation rate; paid-media savings",
    ),
    "High value": _s(
        "personal email and premium channels",
        "premium ranges, loyalty benefits, personal service",
        "none",
        "Exclusively for you",
        "retention and share of wallet",
    ),
    "Mid value": _s(
        "email and social",
        "relevant recommendations with a modest incentive",
        "5–10%",
        "Chosen with you in mind",
        "engagement and conversion rate",
    ),
    "Low value": _s(
        "low-cost channels (email, social)",
        "entry-price offers and bundles",
        "10–15%",
        "Great value, picked for you",
        "conversion rate and cost per acquisition",
    ),
    "Outliers": _s(
        "none in bulk: review individually",
        "exclude from mass campaigns; check for data errors, resellers, fraud or VIPs",
        "none",
        "Handled one by one",
        "share of outliers explained after review",
    ),
    "Unrated": _s(
        "the cheapest channel that reaches them",
        "a tailored message tested against a control group",
        "test 0% vs 10%",
        "Tested message variants",
        "uplift over control",
    ),
}
_VALUE_WORDS = re.compile(r"spend|score|mnt|monetary|income|revenue|value|amount", re.I)


def customer_value(frame: pd.DataFrame, overdue_factor: float) -> pd.DataFrame | None:
    """Per customer: ``overdue`` (bool) and ``growth_gap`` (spend to the base median), or None
    without order-line features."""
    need = {"recency_days", "monetary", "mean_interpurchase_days"}
    if not need <= set(frame.columns):
        return None
    gap = pd.to_numeric(frame["mean_interpurchase_days"], errors="coerce")
    base_gap = float(gap.median()) if gap.notna().any() else float(frame["recency_days"].median())
    typical = gap.fillna(base_gap).clip(lower=1.0)
    recency = frame["recency_days"].to_numpy(dtype=float)
    overdue = recency > overdue_factor * typical.to_numpy()
    active = ~overdue & (recency <= np.median(recency))
    spend = frame["monetary"].to_numpy(dtype=float)
    median = float(np.median(spend))
    growth = np.where(active & (spend < median), median - spend, 0.0)
    return pd.DataFrame({"overdue": overdue, "growth_gap": growth, "spend": spend})


def build_personas(
    segments: pd.DataFrame,
    frame: pd.DataFrame,
    labels: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    *,
    tests: GroupTests | None = None,
    rules: Personas | None = None,
) -> pd.DataFrame:
    """Add persona columns to a ``profile_segments`` table (one row per segment).

    Adds ``segment_name``, ``archetype``, ``description``, ``distinguishing``, the strategy
    fields (``channel``, ``offer``, ``discount``, ``message``, ``kpi``), ``action`` (one line),
    and with order lines ``median_recency_days``, ``median_mean_interpurchase_days``,
    ``share_single_order``,
    ``spend_vs_median``, ``share_overdue``, ``revenue_at_stake``, ``growth_potential``.
    """
    rules = rules or Personas()
    out = segments.copy().set_index("segment")
    z = pd.DataFrame({c: out[f"z_{c}"] for c in numeric if f"z_{c}" in out}, index=out.index)
    meaningful = _meaningful(tests, numeric)
    value = customer_value(frame, rules.overdue_factor)
    if value is not None:
        lab = pd.Series(np.asarray(labels), name="segment")
        g = pd.concat([value, lab], axis=1).groupby("segment")
        freq = frame["frequency"].to_numpy()
        gaps = pd.to_numeric(frame["mean_interpurchase_days"], errors="coerce")
        by = pd.DataFrame(
            {
                "median_recency_days": frame["recency_days"].groupby(lab).median(),
                "median_mean_interpurchase_days": gaps.groupby(lab).median(),
                "share_single_order": pd.Series(freq == 1).groupby(lab).mean(),
                "spend_vs_median": g["spend"].median() / float(np.median(value["spend"])),
                "share_overdue": g["overdue"].mean(),
                "revenue_at_stake": value["spend"].where(value["overdue"], 0.0).groupby(lab).sum(),
                "growth_potential": g["growth_gap"].sum(),
            }
        )
        out = out.drop(columns=[c for c in by.columns if c in out]).join(by)
    rfm = None
    if "top_rfm_segment" in out:
        rfm = (
            out["top_rfm_segment"]
            .astype(str)
            .where(out["top_rfm_share"] >= rules.min_rfm_share, out.get("rfm_cell"))
        )
    archetypes = [
        "Outliers" if seg == -1 else _archetype(seg, z, rfm, rules.min_effect) for seg in out.index
    ]
    names = _unique(
        [
            NOISE_NAME if seg == -1 else _name(seg, z, rfm, out, categorical, rules)
            for seg in out.index
        ],
        z,
        rules,
    )
    out.insert(0, "segment_name", names)
    out.insert(1, "archetype", archetypes)
    strategies = {k: dict(v) for k, v in STRATEGIES.items()}
    for arch, fields in rules.strategies.items():
        strategies.setdefault(arch, dict(STRATEGIES["Unrated"])).update(fields)
    for f in STRATEGY_FIELDS:
        out[f] = [strategies[a][f] for a in archetypes]
    out["action"] = [
        f"{strategies[a]['offer'][:1].upper()}{strategies[a]['offer'][1:]} "
        f"via {strategies[a]['channel']} (discount: {strategies[a]['discount']})."
        for a in archetypes
    ]
    out["distinguishing"] = [
        _distinguishing(z.loc[seg], out.loc[seg], meaningful, rules.min_effect) for seg in out.index
    ]
    out["description"] = [
        _describe(out.loc[seg], z.loc[seg], meaningful, rules) for seg in out.index
    ]
    return out.reset_index()


def _meaningful(tests: GroupTests | None, numeric: list[str]) -> set[str]:
    if tests is None:
        return set(numeric)
    t = tests.tests
    return set(t.loc[t["meaningful"], "feature"])


def _archetype(seg: Any, z: pd.DataFrame, rfm: pd.Series | None, min_effect: float) -> str:
    if rfm is not None:
        return str(rfm.loc[seg])
    value = [c for c in z.columns if _VALUE_WORDS.search(c)]
    if not value:
        return "Unrated"
    v = float(np.mean([z.loc[seg, c] for c in value]))
    if v >= min_effect:
        return "High value"
    return "Low value" if v <= -min_effect else "Mid value"


def _trait(feature: str, zval: float) -> str:
    hi, lo = TRAITS.get(feature, (None, None))
    if feature.startswith("share_") and feature not in TRAITS:
        label = feature.split("_", 2)[-1].replace("_", " ")
        hi, lo = (f"buys {label}", f"rarely buys {label}")
    if hi is None:
        label = feature.replace("_", " ").strip()
        hi, lo = (f"high {label}", f"low {label}")
    return hi if zval > 0 else lo


def _ranked(zrow: pd.Series, exclude: set[str], min_effect: float) -> list[str]:
    r = zrow.drop(labels=[c for c in exclude if c in zrow.index]).abs()
    r = r.sort_values(ascending=False, kind="stable")
    return [f for f in r.index if abs(zrow[f]) >= min_effect]


def _name(
    seg: Any,
    z: pd.DataFrame,
    rfm: pd.Series | None,
    out: pd.DataFrame,
    categorical: list[str],
    rules: Personas,
) -> str:
    zrow = z.loc[seg]
    if rfm is not None:
        traits = _ranked(zrow, {"recency_days", "frequency", "monetary"}, rules.min_effect)
        return " · ".join([str(rfm.loc[seg]), *[_trait(f, zrow[f]) for f in traits[:1]]])
    words = [_trait(f, zrow[f]) for f in _ranked(zrow, set(), rules.min_effect)[:2]]
    if not words and categorical:
        words = [str(out.loc[seg, f"top_{c}"]) for c in categorical[:2]]
    if not words:
        return "Typical customers"
    words[0] = words[0][:1].upper() + words[0][1:]
    return " · ".join(words)


def _unique(names: list[str], z: pd.DataFrame, rules: Personas) -> list[str]:
    """Make names unique by adding the next distinguishing trait, then a number."""
    result = list(names)
    for _ in range(3):
        dupes = {n for n in result if result.count(n) > 1}
        if not dupes:
            return result
        for i, seg in enumerate(z.index):
            if result[i] in dupes:
                zrow = z.loc[seg]
                traits = [_trait(f, zrow[f]) for f in _ranked(zrow, set(), rules.min_effect)]
                extra = next((t for t in traits if t not in result[i]), None)
                if extra:
                    result[i] = f"{result[i]} · {extra}"
    seen: dict[str, int] = {}
    for i, n in enumerate(result):
        if result.count(n) > 1:
            seen[n] = seen.get(n, 0) + 1
            result[i] = f"{n} ({seen[n]})"
    return result


def _distinguishing(
    zrow: pd.Series, row: pd.Series, meaningful: set[str], min_effect: float
) -> str:
    feats = [f for f in _ranked(zrow, set(), min_effect) if f in meaningful]
    return "; ".join(
        f"{f} {'↑' if zrow[f] > 0 else '↓'} (mean {num(row[f'mean_{f}'])}, {zrow[f]:+.1f} sd)"
        for f in feats[:5]
    )


def num(v: float) -> str:
    """The one number format of descriptions (tests parse it back)."""
    if v is None or not np.isfinite(v):
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.0f}"
    return f"{v:.1f}" if a >= 1 else f"{v:.2f}"


def pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _describe(row: pd.Series, zrow: pd.Series, meaningful: set[str], rules: Personas) -> str:
    first = f"{pct(row['share_customers'])} of customers"
    if "share_revenue" in row and pd.notna(row["share_revenue"]):
        first += f" and {pct(row['share_revenue'])} of revenue"
    sentences = [first + "."]
    if "median_recency_days" in row:
        habit = (
            f"Mostly one-time buyers ({pct(row['share_single_order'])} ordered once)"
            if row["share_single_order"] >= 0.5 or pd.isna(row["median_mean_interpurchase_days"])
            else f"They order every {num(row['median_mean_interpurchase_days'])} days (median)"
        )
        sentences.append(
            f"{habit}; last order a median {num(row['median_recency_days'])} days ago; "
            f"median spend {num(row['spend_vs_median'])}× the base median."
        )
        if row["share_overdue"] > 0:
            sentences.append(
                f"{pct(row['share_overdue'])} are overdue for their next order, holding "
                f"{num(row['revenue_at_stake'])} of revenue at stake."
            )
    else:
        feats = [f for f in _ranked(zrow, set(), rules.min_effect) if f in meaningful][:3]
        if feats:
            sentences.append(
                "Compared with the base: "
                + ", ".join(
                    f"{f.replace('_', ' ')} averages {num(row[f'mean_{f}'])} ({zrow[f]:+.1f} sd)"
                    for f in feats
                )
                + "."
            )
        else:
            sentences.append("No feature sets them clearly apart from the base.")
    return " ".join(sentences)
