"""Choose the number of segments by a vote of four criteria, with a guard against k = 2.

The rule (also printed in every report):

0. Size: a segment needs at least ``MIN_SEGMENT_CUSTOMERS`` (2) customers — one customer
   has no spread, no within-segment test and cannot be both learnt from and held out by the
   driver surrogate — so ``n`` customers allow at most ``max_segments(n) = n // 2`` segments
   (and no more than their distinct feature profiles). A larger ``k_max`` is lowered to
   that, with the reason at the end of the decision; a fixed ``k`` or a ``k_min`` above it
   cannot be honoured and is refused, as are fewer than ``MIN_CUSTOMERS`` (4) customers
   (``cluster.base.candidate_ks``).
1. A k is eligible when its smallest segment holds at least ``min_segment_share`` of the
   customers and at least ``MIN_SEGMENT_CUSTOMERS`` of them (tiny segments cannot carry a
   campaign).
2. Four criteria each vote for one eligible k: the highest sampled silhouette, the highest
   Calinski–Harabasz, the lowest Davies–Bouldin and the elbow of the inertia curve (a
   criterion undefined for every k, e.g. the elbow of fewer than three k, abstains).
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

from segmint.evaluate.metrics import knee

CRITERIA = ("silhouette", "calinski_harabasz", "davies_bouldin", "elbow")
MIN_SEGMENT_CUSTOMERS = 2
MIN_CUSTOMERS = 2 * MIN_SEGMENT_CUSTOMERS


def max_segments(customers: int) -> int:
    """The most segments ``customers`` can form with ``MIN_SEGMENT_CUSTOMERS`` in each."""
    return customers // MIN_SEGMENT_CUSTOMERS


@dataclass
class Decision:
    k: int
    votes: dict[str, int | None]
    reason: str


def choose_k(
    table: pd.DataFrame, *, min_segment_share: float, fixed: bool = False, note: str = ""
) -> Decision:
    """Apply the rule to a table with columns k, silhouette, silhouette_low/high,
    calinski_harabasz, davies_bouldin, inertia and min_segment_share (and, when known,
    min_segment_size, the customers in the smallest segment). ``fixed``: the user fixed k;
    ``note`` (e.g. why the range was clamped) ends the reason."""
    t = table.sort_values("k").reset_index(drop=True)
    ok = t["min_segment_share"] >= min_segment_share
    if "min_segment_size" in t:
        ok &= t["min_segment_size"] >= MIN_SEGMENT_CUSTOMERS
    eligible = t[ok]
    note = f" {note}" if note else ""
    if eligible.empty and len(t) > 1:
        eligible = t
        note += (
            f" No k kept every segment above {min_segment_share:.1%} of customers and at "
            f"least {MIN_SEGMENT_CUSTOMERS} customers, so all were considered."
        )
    if len(t) == 1:
        k = int(t["k"].iloc[0])
        why = "was fixed by the user" if fixed else "is the only k in the range"
        return Decision(k, dict.fromkeys(CRITERIA), f"k = {k} {why}.{note}")
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
    """One vote per criterion; a criterion undefined for every k (e.g. Calinski–Harabasz
    when each segment is a single point) abstains instead of voting at random."""

    def best(col: str, highest: bool) -> int | None:
        vals = t[col]
        if vals.isna().all():
            return None
        return int(t.loc[vals.idxmax() if highest else vals.idxmin(), "k"])

    return {
        "silhouette": best("silhouette", True),
        "calinski_harabasz": best("calinski_harabasz", True),
        "davies_bouldin": best("davies_bouldin", False),
        "elbow": knee(t["k"].tolist(), t["inertia"].tolist()),
    }


def _tally(votes: dict[str, int | None]) -> dict[int, int]:
    tally: dict[int, int] = {}
    for k in votes.values():
        if k is not None:
            tally[k] = tally.get(k, 0) + 1
    return tally


def _winner(t: pd.DataFrame, votes: dict[str, int | None]) -> int:
    tally = _tally(votes)
    if not tally:  # every criterion abstained: the fewest segments
        return int(t["k"].min())
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
