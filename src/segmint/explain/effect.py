"""Does an attribute change an outcome? ``segmint analyze effect DATA --by X --on Y``.

For each outcome ``Y`` across the groups of ``X``:

- numeric ``Y``: Kruskal–Wallis H, p and ε²; pairwise Mann–Whitney tests with Holm
  correction and rank-biserial effect sizes (``explain.stats``);
- categorical ``Y``: chi-square and Cramér's V;
- when ``X`` is ordinal — numeric, or text with an ``order`` given — Spearman's ρ between
  ``X`` (its rank in ``order``) and ``Y``, with its p-value (scipy).

A numeric ``X`` with more than ``max_groups`` distinct values is cut into ``bins`` quantile
groups for the group tests; Spearman still uses the raw values. Rows with ``X`` or ``Y``
missing are left out of that outcome's tests and counted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from segmint.exceptions import InputError
from segmint.explain.stats import SPEARMAN_BOUNDS, compare_groups, effect_label, holm


@dataclass
class EffectResult:
    """``tests``: one row per outcome; ``posthoc``: pairs of groups per numeric outcome;
    ``groups``: n, mean and median of every outcome per group."""

    by: str
    ordinal: bool
    binned: bool
    tests: pd.DataFrame
    posthoc: pd.DataFrame
    groups: pd.DataFrame


def _check_column(frame: pd.DataFrame, col: str, setting: str, what: str, source: str) -> None:
    if col not in frame.columns:
        raise InputError(
            f"{col!r} ({setting}: {what}) is not a column of the table.",
            expected=f"one of: {', '.join(c for c in frame.columns if c != 'customer_id')}",
            path=source,
            column=col,
            code="input.unknown_column",
            settings=(setting,),
        )


def attribute_effect(
    frame: pd.DataFrame,
    by: str,
    on: list[str],
    *,
    order: list[str] | None = None,
    bins: int = 5,
    max_groups: int = 10,
    alpha: float = 0.05,
    posthoc_sample: int = 5000,
    seed: int = 0,
    source: str = "the data",
) -> EffectResult:
    """Test whether the groups of ``by`` differ in each outcome of ``on``."""
    _check_column(frame, by, "by", "the attribute that forms the groups", source)
    for y in on:
        _check_column(frame, y, "on", "an outcome", source)
    x = frame[by]
    numeric_x = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
    binned = False
    rank: pd.Series | None = None
    order_levels: list | None = list(order) if order else None
    if order:
        levels = x.dropna().astype("string").unique().tolist()
        missing = [v for v in levels if v not in order]
        if missing:
            raise InputError(
                f"the order given for {by!r} (order) does not list all of its values: missing "
                f"{', '.join(map(repr, sorted(missing)))}.",
                expected=f"all of: {', '.join(map(repr, sorted(levels)))}",
                path=source,
                column=by,
                settings=("order",),
            )
        groups = pd.Categorical(x.astype("string"), categories=order, ordered=True)
        rank = pd.Series(groups.codes, index=frame.index, dtype="float64").where(groups.codes >= 0)
    elif numeric_x:
        rank = x.astype("float64")
        if x.nunique(dropna=True) > max_groups:
            binned = True
            _, edges = pd.qcut(x, q=bins, duplicates="drop", retbins=True)
            labels = [f"{_edge(a)}–{_edge(b)}" for a, b in itertools.pairwise(edges)]
            groups = pd.cut(x, edges, labels=labels, include_lowest=True)
            order_levels = labels
        else:
            groups = x
    else:
        groups = x.astype("string")
    groups = pd.Series(groups, index=frame.index, name=by)
    ordinal = rank is not None

    numeric_y = [y for y in on if pd.api.types.is_numeric_dtype(frame[y])]
    categorical_y = [y for y in on if y not in numeric_y]
    ok = groups.notna().to_numpy()
    res = compare_groups(
        frame.loc[ok],
        groups[ok].to_numpy(),
        numeric_y,
        categorical_y,
        alpha=alpha,
        posthoc_sample=posthoc_sample,
        seed=seed,
        levels=order_levels,
    )
    tests = res.tests.rename(columns={"feature": "outcome"})
    tests.insert(1, "by", by)
    tests["groups"] = int(groups[ok].nunique())
    tests["missing_rows"] = [
        int((~ok | frame[y].isna().to_numpy()).sum()) for y in tests["outcome"]
    ]
    rho, rho_p = [], []
    for y in tests["outcome"]:
        if ordinal and y in numeric_y:
            both = rank.notna() & frame[y].notna()
            r, p = sps.spearmanr(rank[both], frame.loc[both, y])
            rho.append(float(r))
            rho_p.append(float(p))
        else:
            rho.append(np.nan)
            rho_p.append(np.nan)
    tests["spearman_rho"] = rho
    tests["spearman_p"] = rho_p
    tests["spearman_p_holm"] = holm(rho_p)
    tests["spearman_label"] = [effect_label(r, SPEARMAN_BOUNDS) for r in rho]
    posthoc = res.posthoc.rename(columns={"feature": "outcome"})
    summary = []
    for y in on:
        col = frame.loc[ok, y]
        if y in numeric_y:
            g = col.groupby(groups[ok], observed=True)
            part = pd.DataFrame(
                {"n": g.count(), "mean": g.mean(), "median": g.median(), "outcome": y}
            )
        else:
            g = col.astype("string").groupby(groups[ok], observed=True)
            part = pd.DataFrame(
                {"n": g.count(), "mode": g.agg(lambda s: s.mode().iloc[0]), "outcome": y}
            )
        summary.append(part.rename_axis("group").reset_index())
    group_table = pd.concat(summary, ignore_index=True)
    group_table["group"] = group_table["group"].astype("string")
    return EffectResult(
        by=by,
        ordinal=ordinal,
        binned=binned,
        tests=tests,
        posthoc=posthoc,
        groups=group_table.reset_index(drop=True),
    )


def _edge(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"
