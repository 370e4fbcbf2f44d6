"""Which differences between groups are real: omnibus tests, post-hoc pairs, effect sizes.

- Numeric features: Kruskal–Wallis H across groups (scipy) with epsilon-squared
  ``ε² = H / (n − 1)`` (Tomczak & Tomczak 2014; 0 = no rank separation, 1 = complete);
  post-hoc pairwise Mann–Whitney U (scipy, two-sided) with the rank-biserial correlation
  ``r = 1 − 2U / (n₁n₂)`` as effect size.
- Categorical features: chi-square test of independence with Cramér's V (scipy).
- Multiple testing: Holm's step-down correction, over features for the omnibus tests and over
  pairs within a feature for the post-hoc tests. Written here because scipy only ships
  Benjamini–Hochberg and statsmodels is a large dependency for a six-line function.

Omnibus tests use every row (they are O(n log n)); post-hoc pairs use at most
``posthoc_sample`` rows per group, drawn with a fixed seed, and say so in ``n_a``/``n_b``.
With a million customers every p-value is tiny, so the narrative only uses differences that
are both significant after correction *and* at least a small effect.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.stats.contingency import association

# Conventional lower bounds for small / medium / large effects.
EPSILON2_BOUNDS = (0.01, 0.08, 0.26)  # Tomczak & Tomczak (2014)
RANK_BISERIAL_BOUNDS = (0.1, 0.3, 0.5)  # |r|, Cohen-style
CRAMERS_V_BOUNDS = (0.1, 0.3, 0.5)  # for min(rows, cols) − 1 = 1; divided by √df otherwise
SPEARMAN_BOUNDS = (0.1, 0.3, 0.5)


def holm(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    order = np.argsort(q, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * q[order])
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def effect_label(value: float, bounds: tuple[float, float, float]) -> str:
    v = abs(value)
    if not np.isfinite(v) or v < bounds[0]:
        return "negligible"
    if v < bounds[1]:
        return "small"
    return "medium" if v < bounds[2] else "large"


def kruskal(groups: list[np.ndarray]) -> tuple[float, float, float]:
    """(H, p, ε²) over the non-empty groups; (0, 1, 0) when all values are equal."""
    groups = [g for g in groups if len(g)]
    n = sum(len(g) for g in groups)
    if len(groups) < 2 or n < 3:
        return float("nan"), float("nan"), float("nan")
    try:
        h, p = sps.kruskal(*groups)
    except ValueError:  # every value identical
        return 0.0, 1.0, 0.0
    return float(h), float(p), float(h) / (n - 1)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(U of ``a``, two-sided p, rank-biserial r); r > 0 means ``a`` tends to be larger."""
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    res = sps.mannwhitneyu(a, b, alternative="two-sided")
    u = float(res.statistic)
    return u, float(res.pvalue), 2.0 * u / (len(a) * len(b)) - 1.0


def cramers_v(table: np.ndarray) -> tuple[float, float, int, float]:
    """(chi², p, dof, Cramér's V) of a contingency table (rows/cols of zeros removed)."""
    t = np.asarray(table, dtype=np.int64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return float("nan"), float("nan"), 0, float("nan")
    chi2, p, dof, _ = sps.chi2_contingency(t, correction=False)
    v = float(association(t, method="cramer", correction=False))
    return float(chi2), float(p), int(dof), v


@dataclass
class GroupTests:
    """``tests``: one row per feature; ``posthoc``: one row per feature × pair of groups."""

    tests: pd.DataFrame
    posthoc: pd.DataFrame


def compare_groups(
    frame: pd.DataFrame,
    groups: np.ndarray | pd.Series,
    numeric: list[str],
    categorical: list[str] = (),  # type: ignore[assignment]
    *,
    alpha: float = 0.05,
    posthoc_sample: int = 5000,
    seed: int = 0,
    levels: list | None = None,
) -> GroupTests:
    """Test every feature for differences between ``groups`` (e.g. segment labels).

    Returns a tidy ``tests`` table (feature, kind, test, statistic, dof, p, p_holm, effect,
    effect_size, effect_label, n, significant, meaningful) and a ``posthoc`` table of pairwise
    Mann–Whitney tests for numeric features (a, b, n_a, n_b, median_a, median_b, u, p, p_holm,
    rank_biserial, effect_label, significant). ``levels`` fixes the order of the groups
    (pairs are ``a`` before ``b`` in it); by default they are sorted.
    """
    g = pd.Series(np.asarray(groups)).reset_index(drop=True)
    present = g.dropna().unique().tolist()
    if levels is None:
        levels = sorted(present, key=_sort_key)
    else:
        levels = [v for v in levels if v in set(present)]
    codes = pd.Categorical(g, categories=levels).codes
    rows: list[dict] = []
    post: list[dict] = []
    rng = np.random.default_rng(seed)
    idx_by_level = {lv: np.flatnonzero(codes == i) for i, lv in enumerate(levels)}
    sub_idx = {
        lv: (
            ix
            if len(ix) <= posthoc_sample
            else np.sort(rng.choice(ix, posthoc_sample, replace=False))
        )
        for lv, ix in idx_by_level.items()
    }
    for f in numeric:
        x = pd.to_numeric(frame[f], errors="coerce").to_numpy(dtype=float)
        valid = ~np.isnan(x)
        parts = [x[ix][valid[ix]] for ix in idx_by_level.values()]
        h, p, eps = kruskal(parts)
        rows.append(
            dict(
                feature=f,
                kind="numeric",
                test="Kruskal–Wallis",
                statistic=h,
                dof=len([q for q in parts if len(q)]) - 1,
                p=p,
                effect="epsilon²",
                effect_size=eps,
                n=int(valid.sum()),
            )
        )
        pairs = []
        for a, b in itertools.combinations(levels, 2):
            xa = x[sub_idx[a]]
            xb = x[sub_idx[b]]
            xa, xb = xa[~np.isnan(xa)], xb[~np.isnan(xb)]
            u, pp, r = mann_whitney(xa, xb)
            pairs.append(
                dict(
                    feature=f,
                    a=a,
                    b=b,
                    n_a=len(xa),
                    n_b=len(xb),
                    median_a=float(np.median(xa)) if len(xa) else np.nan,
                    median_b=float(np.median(xb)) if len(xb) else np.nan,
                    u=u,
                    p=pp,
                    rank_biserial=r,
                )
            )
        if pairs:
            adj = holm([q["p"] for q in pairs])
            for q, pa in zip(pairs, adj, strict=True):
                q["p_holm"] = pa
                q["effect_label"] = effect_label(q["rank_biserial"], RANK_BISERIAL_BOUNDS)
                q["significant"] = bool(pa < alpha)
            post += pairs
    for f in categorical:
        col = frame[f].astype("string").reset_index(drop=True)
        ok = col.notna().to_numpy() & (codes >= 0)
        table = pd.crosstab(codes[ok], col[ok].to_numpy()).to_numpy()
        chi2, p, dof, v = cramers_v(table)
        rows.append(
            dict(
                feature=f,
                kind="categorical",
                test="chi-square",
                statistic=chi2,
                dof=dof,
                p=p,
                effect="Cramér's V",
                effect_size=v,
                n=int(ok.sum()),
            )
        )
    tests = pd.DataFrame(
        rows,
        columns=[
            "feature",
            "kind",
            "test",
            "statistic",
            "dof",
            "p",
            "effect",
            "effect_size",
            "n",
        ],
    )
    tests["p_holm"] = holm(tests["p"].to_numpy()) if len(tests) else []
    tests["effect_label"] = [
        effect_label(
            r.effect_size,
            EPSILON2_BOUNDS if r.kind == "numeric" else _cramer_bounds(r.dof, len(levels)),
        )
        for r in tests.itertuples()
    ]
    tests["significant"] = tests["p_holm"] < alpha
    tests["meaningful"] = tests["significant"] & (tests["effect_label"] != "negligible")
    posthoc = pd.DataFrame(
        post,
        columns=[
            "feature",
            "a",
            "b",
            "n_a",
            "n_b",
            "median_a",
            "median_b",
            "u",
            "p",
            "p_holm",
            "rank_biserial",
            "effect_label",
            "significant",
        ],
    )
    return GroupTests(tests=tests, posthoc=posthoc)


def _cramer_bounds(dof: int, n_groups: int) -> tuple[float, float, float]:
    """Cohen's bounds for V scale with 1/√(min(r, c) − 1), where dof = (r − 1)(c − 1)."""
    r1 = max(1, n_groups - 1)
    df_star = max(1, min(r1, dof // r1))
    s = float(np.sqrt(df_star))
    return tuple(b / s for b in CRAMERS_V_BOUNDS)  # type: ignore[return-value]


def _sort_key(v: object) -> tuple[int, object]:
    return (0, v) if isinstance(v, int | float | np.integer | np.floating) else (1, str(v))
