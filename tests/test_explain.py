"""Explanations: statistics against scipy, drivers, anomalies and personas."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import segmint
from segmint.config import Settings
from segmint.data.synth import generate_orders
from segmint.exceptions import ConfigError
from segmint.explain.anomalies import detect_anomalies
from segmint.explain.drivers import _auc, explain_drivers
from segmint.explain.stats import compare_groups, holm

from .conftest import dataset


@pytest.fixture(scope="module")
def groups_frame():
    rng = np.random.default_rng(3)
    n = 3000
    lab = rng.integers(0, 3, n)
    df = pd.DataFrame(
        {
            "signal": lab * 1.5 + rng.normal(0, 1, n),
            "weak": lab * 0.1 + rng.normal(0, 1, n),
            "noise": rng.normal(0, 1, n),
            "colour": np.where(rng.random(n) < 0.2 + 0.3 * lab, "red", "blue"),
        }
    )
    df.loc[rng.choice(n, 30, replace=False), "noise"] = np.nan
    return df, lab


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone max: 0.06
    assert np.allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm(p)[4])
    assert holm([0.9, 0.8])[0] == 1.0


def test_group_tests_equal_scipy(groups_frame):
    df, lab = groups_frame
    res = compare_groups(df, lab, ["signal", "weak", "noise"], ["colour"], posthoc_sample=10**6)
    t = res.tests.set_index("feature")
    for f in ("signal", "weak", "noise"):
        parts = [df[f][lab == g].dropna().to_numpy() for g in range(3)]
        h, p = sps.kruskal(*parts)
        n = sum(map(len, parts))
        assert t.loc[f, "statistic"] == pytest.approx(h)
        assert t.loc[f, "p"] == pytest.approx(p)
        assert t.loc[f, "effect_size"] == pytest.approx(h / (n - 1))
        assert 0 <= t.loc[f, "effect_size"] <= 1
    assert np.allclose(t["p_holm"], holm(t["p"].to_numpy()))
    table = pd.crosstab(lab, df["colour"]).to_numpy()
    chi2, _p, _dof, _ = sps.chi2_contingency(table, correction=False)
    v = np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))
    assert t.loc["colour", "statistic"] == pytest.approx(chi2)
    assert t.loc["colour", "effect_size"] == pytest.approx(v)
    assert t.loc["signal", "meaningful"] and t.loc["colour", "meaningful"]
    assert not t.loc["noise", "meaningful"]

    post = res.posthoc[res.posthoc.feature == "signal"].set_index(["a", "b"])
    pvals = []
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        xa, xb = df.signal[lab == a].to_numpy(), df.signal[lab == b].to_numpy()
        u, p = sps.mannwhitneyu(xa, xb, alternative="two-sided")
        assert post.loc[(a, b), "u"] == pytest.approx(u)
        assert post.loc[(a, b), "p"] == pytest.approx(p)
        assert post.loc[(a, b), "rank_biserial"] == pytest.approx(2 * u / (len(xa) * len(xb)) - 1)
        assert -1 <= post.loc[(a, b), "rank_biserial"] <= 1
        pvals.append(p)
    assert np.allclose(post["p_holm"], holm(pvals))


def test_posthoc_sample_is_capped(groups_frame):
    df, lab = groups_frame
    res = compare_groups(df, lab, ["signal"], posthoc_sample=100, seed=1)
    assert (res.posthoc[["n_a", "n_b"]] <= 100).all().all()
    assert res.tests.loc[0, "n"] == len(df)  # omnibus test on every row


def test_auc_equals_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    s = np.round(rng.random(500) + y * 0.3, 2)  # ties included
    assert _auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_drivers_rank_defining_features_first():
    rng = np.random.default_rng(7)
    n = 6000
    lab = rng.integers(0, 4, n)
    df = pd.DataFrame(
        {
            "a": lab * 2.0 + rng.normal(0, 1, n),
            "b": (lab % 2) * 3.0 + rng.normal(0, 1, n),
            "noise1": rng.normal(0, 1, n),
            "noise2": rng.exponential(1, n),
            "channel": rng.choice(["web", "store"], n),
        }
    )
    d = explain_drivers(df, lab, ["a", "b", "noise1", "noise2"], ["channel"], repeats=5)
    assert d.fidelity["accuracy"] > 0.85
    top = d.top("all", 5).set_index("feature")
    assert set(top.index[:2]) == {"a", "b"}
    for f in ("noise1", "noise2", "channel"):
        assert abs(top.loc[f, "importance"]) < 0.01
        assert top.loc[f, "ci_low"] <= 0.005
    # per segment: "b" separates odd from even segments, so it matters for every segment
    for s in range(4):
        seg = d.top(s, 5).set_index("feature")
        assert set(seg.index[:2]) == {"a", "b"}
        assert seg.loc["a", "ci_low"] > 0


def test_planted_anomalies_are_in_top_list():
    rng = np.random.default_rng(11)
    n = 5000
    X = rng.normal(0, 1, (n, 4)).astype(np.float32)
    planted = rng.choice(n, 10, replace=False)
    X[planted] += rng.choice([-7.0, 7.0], (10, 4))
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame.insert(0, "customer_id", [f"c{i}" for i in range(n)])
    labels = (X[:, 0] > 0).astype(int)
    centers = np.stack([X[labels == 0].mean(0), X[labels == 1].mean(0)])
    res = detect_anomalies(X, frame, labels, list("abcd"), centers=centers, top=20)
    assert set(frame.customer_id.iloc[planted]) <= set(res.top.customer_id)
    assert res.top.anomaly_score.is_monotonic_decreasing
    first = res.top.iloc[0]
    assert re.search(r"\((top|bottom) [\d.]+%\)", first.reasons)
    assert res.scores.shape == (n, 2)
    assert res.flagged >= 10
    assert set(res.signals) == {"isolation_forest", "distance_to_centre"}


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    generate_orders(4000, d / "orders.parquet", seed=5)
    result = segmint.segment(d / "orders.parquet", seed=0)
    return result, segmint.save(result, d / "run")


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def _shown(value: float) -> set[str]:
    """The ways a value may be printed in a description."""
    from segmint.explain.personas import num, pct

    out = {num(value), f"{value:+.1f}"}
    if 0 <= value <= 1:
        out.add(pct(value).rstrip("%"))
    return {s.lstrip("+") for s in out} | out


def _assert_grounded(segs: pd.DataFrame) -> None:
    """Names unique; every number in a description is a value of that row of segments.csv."""
    assert segs.segment_name.notna().all() and segs.segment_name.is_unique
    for col in ("description", "channel", "offer", "discount", "message", "kpi", "action"):
        assert segs[col].notna().all() and (segs[col].str.len() >= 3).all(), col
    numeric_cols = [c for c in segs.columns if pd.api.types.is_numeric_dtype(segs[c])]
    for _, row in segs.iterrows():
        allowed = set().union(*(_shown(float(row[c])) for c in numeric_cols if pd.notna(row[c])))
        text = row.description
        for feature in (c[5:] for c in segs.columns if c.startswith("mean_")):
            text = text.replace(feature.replace("_", " "), "")  # names may hold digits
        numbers = _NUMBER.findall(text)
        assert numbers, row.description
        for token in numbers:
            assert token in allowed or token.lstrip("+") in allowed, (token, row.description)
        sentences = [s for s in re.split(r"(?<=\.)\s+", row.description) if s]
        assert 2 <= len(sentences) <= 4, row.description


def test_personas_named_and_grounded_in_segments_csv(synthetic_run):
    _, out = synthetic_run
    segs = pd.read_csv(out / "segments.csv")
    _assert_grounded(segs)
    assert (segs.revenue_at_stake >= 0).all() and (segs.growth_potential >= 0).all()
    assert (segs.description.map(lambda d: len(_NUMBER.findall(d))) >= 4).all()


def test_attribute_personas_grounded(tmp_path):
    path = dataset("mall_customers.csv")
    result = segmint.segment(path, features=["Annual Income (k$)", "Spending Score (1-100)"])
    out = segmint.save(result, tmp_path / "mall")
    segs = pd.read_csv(out / "segments.csv")
    _assert_grounded(segs)
    assert set(segs.archetype) <= {"High value", "Mid value", "Low value", "Unrated"}
    assert result.insights.headline["risk"] is None  # no spend over time: nothing at stake


def test_explain_artifacts_written(synthetic_run):
    result, out = synthetic_run
    for name in ("tests.csv", "posthoc.csv", "drivers.csv", "anomalies.csv", "summary.md"):
        assert (out / name).is_file(), name
    an = pd.read_csv(out / "anomalies.csv")
    assert len(an) == result.settings.explain.anomalies_top
    assert {"customer_id", "segment", "anomaly_score", "reasons"} <= set(an.columns)
    m = result.manifest.explain.model_dump()
    assert m["anomalies_flagged"] == int(result.customers.is_anomaly.sum())
    assert 0.5 < m["drivers_fidelity"]["accuracy"] <= 1
    summary = (out / "summary.md").read_text()
    for name in result.segments.segment_name:
        assert name in summary
    assert "Biggest risk" in summary
    html = (out / "report.html").read_text()
    for heading in ("What drives the segments", "Personas", "Unusual customers", "Statistical"):
        assert heading in html, heading


def test_strategy_overrides_and_mixed_segment_naming(synthetic_run):
    from segmint.config import Personas
    from segmint.explain.personas import build_personas
    from segmint.explain.profiles import profile_segments

    result, _ = synthetic_run
    f = result.features
    labels = result.customers.segment.to_numpy()
    base = profile_segments(f.frame, labels, f.numeric, f.categorical)
    arch = result.segments.archetype.iloc[0]
    rules = Personas(strategies={arch: {"discount": "7%", "kpi": "custom KPI"}})
    out = build_personas(base, f.frame, labels, f.numeric, f.categorical, rules=rules)
    mine = out[out.archetype == arch]
    assert (mine.discount == "7%").all() and (mine.kpi == "custom KPI").all()
    others = out[out.archetype != arch]
    assert (others.discount != "7%").all()
    # with an impossible share threshold every segment is named from its mean R/FM cell
    cell = build_personas(
        base, f.frame, labels, f.numeric, f.categorical, rules=Personas(min_rfm_share=1.0)
    )
    assert (cell.archetype == base.rfm_cell).all()
    with pytest.raises(ConfigError, match=r"strategies.Lost.colour.*should be .channel."):
        Settings.build({"personas": {"strategies": {"Lost": {"colour": "red"}}}})


def test_density_noise_and_likelihood_signals():
    rng = np.random.default_rng(2)
    n = 2000
    X = rng.normal(0, 1, (n, 3)).astype(np.float32)
    X[:5] += 4.0  # sparse region: what DBSCAN/HDBSCAN would call noise
    frame = pd.DataFrame(X, columns=list("abc"))
    frame.insert(0, "customer_id", np.arange(n).astype(str))
    labels = np.zeros(n, dtype=int)
    labels[:5] = -1
    loglik = -0.5 * (X**2).sum(axis=1)
    res = detect_anomalies(X, frame, labels, list("abc"), log_likelihood=loglik, top=30)
    assert set(res.signals) == {"isolation_forest", "low_likelihood", "density_noise"}
    assert res.scores.is_anomaly[:5].all()
    noisy = res.top[res.top.segment == -1]
    assert len(noisy) == 5 and noisy.reasons.str.startswith("density noise").all()
