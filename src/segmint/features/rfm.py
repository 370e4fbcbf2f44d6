"""RFM quintile scores and the standard named RFM segments (pandas, one row per customer).

Scores use average-rank percentiles so ties (e.g. the many one-order customers) share a score
and the result does not depend on row order. The named segments follow the widely used
recency × frequency/monetary grid; the 5 × 5 table below is the whole rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Rows: recency score 1..5 (5 = most recent). Columns: FM score 1..5 (mean of F and M, rounded).
_GRID = {
    5: ["New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Champions"],
    3: ["About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose"],
    1: ["Lost", "Lost", "At Risk", "At Risk", "Can't Lose"],
}
RFM_SEGMENTS = (
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose",
    "Hibernating",
    "Lost",
)


# The grid as category codes: row R - 1, column FM - 1.
_CODES = np.array(
    [[RFM_SEGMENTS.index(_GRID[r][c]) for c in range(5)] for r in range(1, 6)], dtype=np.int8
)


def rfm_name(r: float, fm: float) -> str:
    """The named segment of (possibly fractional) R and FM scores, rounded half up."""
    ri = int(np.clip(np.floor(r + 0.5), 1, 5))
    fi = int(np.clip(np.floor(fm + 0.5), 1, 5))
    return _GRID[ri][fi - 1]


def quintile_score(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """1..5 by average-rank percentile; ties share a score."""
    pct = values.rank(method="average", pct=True)
    if not higher_is_better:
        pct = 1.0 - pct + 1.0 / len(values)
    score = np.ceil(pct.to_numpy() * 5).clip(1, 5)
    return pd.Series(score.astype("int8"), index=values.index)


def rfm_scores(recency_days: pd.Series, frequency: pd.Series, monetary: pd.Series) -> pd.DataFrame:
    """R, F, M scores (1..5), the three-digit RFM code and the named segment."""
    r = quintile_score(recency_days, higher_is_better=False)
    f = quintile_score(frequency)
    m = quintile_score(monetary)
    fm = np.floor((f.astype(float) + m.astype(float)) / 2 + 0.5).astype(int).clip(1, 5)
    codes = _CODES[r.to_numpy() - 1, fm.to_numpy() - 1]
    code = r.astype(np.int16) * 100 + f.astype(np.int16) * 10 + m.astype(np.int16)
    return pd.DataFrame(
        {
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "rfm_code": code.astype(str),
            "rfm_segment": pd.Categorical.from_codes(codes, categories=list(RFM_SEGMENTS)),
        },
        index=recency_days.index,
    )
