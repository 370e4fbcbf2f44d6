"""Choose the number of segments by a vote of four criteria, with a guard against k = 2.

The rule (also printed in every report):

1. A k is eligible when its smallest segment holds at least ``min_segment_share`` of the
   customers (tiny segments cannot carry a campaign).
2. Four criteria each vote for one eligible k: the highest sampled silhouette, the highest
   Calinski–Harabasz, the lowest Davies–Bouldin and the elbow of the inertia curve.
3. The k with most votes wins; a tie goes to the higher silhouette.
4. Guard against k = 2: silhouette and Calinski–Harabasz favour a single dominant split on
   skewed customer data (high vs low value), yet two segments give marketing little to act
   on. k = 2 is kept only if it wins the vote outright (more votes than any other k, not
   on a tie-break) *and* its silhouette beats every k ≥ 3 by more than the sampling noise
   (its bootstrap 95% interval lies above their best point estimate); otherwise the vote
   is re-run over k ≥ 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .metrics import knee

CRITERIA = ("silhouette", "calinski_harabasz", "davies_bouldin", "elbow")


@dataclass
class Decision:
    k: int
    votes: dict[str, int | None]
    reason: str


def choose_k(table: pd.DataFrame, *, min_segment_share: float) -> Decision:
    """Apply the rule to a table with columns k, silhouette, silhouette_low/high,
    calinski_harabasz, davies_bouldin, inertia and min_segment_share."""
    t = table.sort_values("k").reset_index(drop=True)
    eligible = t[t["min_segment_share"] >= min_segment_share]
    note = ""
    if eligible.empty:
        eligible = t
        note = (
            f" No k kept every segment above {min_segment_share:.1%} of customers, so all "
            "were considered."
        )
    if len(t) == 1:
        k = int(t["k"].iloc[0])
        return Decision(k, dict.fromkeys(CRITERIA), f"k = {k} was fixed by the user.")
    votes = _votes(eligible)
    k = _winner(eligible, votes)
    reason = _describe(k, votes)
    if k == 2:
        rest = eligible[eligible["k"] >= 3]
        k2 = eligible[eligible["k"] == 2].iloc[0]
        outright = _tally(votes).get(2, 0) > max(
            (n for kk, n in _tally(votes).items() if kk != 2), default=0
        )
        if not rest.empty and (not outright or k2["silhouette_low"] <= rest["silhouette"].max()):
            votes3 = _votes(rest)
            k = _winner(rest, votes3)
            first = ", ".join(f"{_NAMES[c]} → {v}" for c, v in votes.items() if v is not None)
            why = (
                "k = 2 tied for the most votes"
                if not outright
                else f"k = 2 won, but its silhouette {k2['silhouette']:.3f} (95% CI "
                f"{k2['silhouette_low']:.3f}–{k2['silhouette_high']:.3f}) is not clearly "
                f"above the best k ≥ 3 ({rest['silhouette'].max():.3f})"
            )
            reason = (
                f"First vote: {first}. {why}; two segments give marketing little to act on, "
                "so the vote was re-run over k ≥ 3: " + _describe(k, votes3)
            )
            votes = votes3
    return Decision(k, votes, reason + note)


def _votes(t: pd.DataFrame) -> dict[str, int | None]:
    v: dict[str, int | None] = {
        "silhouette": int(t.loc[t["silhouette"].idxmax(), "k"]),
        "calinski_harabasz": int(t.loc[t["calinski_harabasz"].idxmax(), "k"]),
        "davies_bouldin": int(t.loc[t["davies_bouldin"].idxmin(), "k"]),
        "elbow": knee(t["k"].tolist(), t["inertia"].tolist()),
    }
    return v


def _tally(votes: dict[str, int | None]) -> dict[int, int]:
    tally: dict[int, int] = {}
    for k in votes.values():
        if k is not None:
            tally[k] = tally.get(k, 0) + 1
    return tally


def _winner(t: pd.DataFrame, votes: dict[str, int | None]) -> int:
    tally = _tally(votes)
    best = max(tally.values())
    tied = [k for k, n in tally.items() if n == best]
    sil = t.set_index("k")["silhouette"]
    return int(max(tied, key=lambda k: sil.get(k, float("-inf"))))


_NAMES = {
    "silhouette": "silhouette",
    "calinski_harabasz": "Calinski–Harabasz",
    "davies_bouldin": "Davies–Bouldin",
    "elbow": "elbow",
}
_BEST = {
    "silhouette": "highest silhouette",
    "calinski_harabasz": "highest Calinski–Harabasz",
    "davies_bouldin": "lowest Davies–Bouldin",
    "elbow": "elbow of inertia",
}


def _describe(k: int, votes: dict[str, int | None]) -> str:
    for_k = [_BEST[c] for c, v in votes.items() if v == k]
    others = [f"{_NAMES[c]} → {v}" for c, v in votes.items() if v is not None and v != k]
    text = f"k = {k} has {len(for_k)} of {sum(v is not None for v in votes.values())} votes"
    if for_k:
        text += f" ({', '.join(for_k)})"
    if others:
        text += f"; the others: {', '.join(others)}"
    return text + "."
