"""`segmint analyze effect` and derived columns, checked against scipy on the real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

import segmint
from segmint.cli import app
from segmint.data.derive import derive_columns, parse_assignments
from segmint.exceptions import ConfigError

from .conftest import dataset

MNT = "MntWines+MntFruits+MntMeatProducts+MntFishProducts+MntSweetProducts+MntGoldProds"
CMP = "AcceptedCmp1+AcceptedCmp2+AcceptedCmp3+AcceptedCmp4+AcceptedCmp5+Response"
ORDER = ["Basic", "2n Cycle", "Graduation", "Master", "PhD"]


@pytest.fixture(scope="module")
def campaign():
    path = dataset("marketing_campaign.csv")
    df = pd.read_csv(path, sep="\t")
    df["Total_Spend"] = df[MNT.split("+")].sum(axis=1)
    df["Campaigns"] = df[CMP.split("+")].sum(axis=1)
    return path, df


def test_cli_effect_end_to_end(campaign, tmp_path):
    path, df = campaign
    args = [
        "analyze",
        "effect",
        str(path),
        "--by",
        "Education",
        "--on",
        "Total_Spend,Campaigns",
        "--derive",
        f"Total_Spend={MNT}",
        "--derive",
        f"Campaigns={CMP}",
        "--order",
        ",".join(ORDER),
        "--out",
        str(tmp_path),
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "KW H" in r.output and "Spearman" in r.output and "Basic vs PhD" in r.output
    effect = pd.read_csv(tmp_path / "effect.csv").set_index("outcome")
    post = pd.read_csv(tmp_path / "posthoc.csv")
    for outcome in ("Total_Spend", "Campaigns"):
        parts = [df.loc[df.Education == e, outcome].to_numpy() for e in ORDER]
        h, p = sps.kruskal(*parts)
        assert effect.loc[outcome, "statistic"] == pytest.approx(h)
        assert effect.loc[outcome, "p"] == pytest.approx(p)
        rank = df.Education.map({e: i for i, e in enumerate(ORDER)})
        rho, _ = sps.spearmanr(rank, df[outcome])
        assert effect.loc[outcome, "spearman_rho"] == pytest.approx(rho)
        pairs = post[post.outcome == outcome]
        assert len(pairs) == 10  # 5 groups → 10 pairs, Holm-corrected together
        assert (pairs.p_holm >= pairs.p - 1e-15).all()
    # Basic spends far less than PhD: a large, significant difference
    bp = post[(post.outcome == "Total_Spend") & (post.a == "Basic") & (post.b == "PhD")].iloc[0]
    assert bp.significant and bp.effect_label == "large" and bp.rank_biserial < 0
    groups = pd.read_csv(tmp_path / "groups.csv")
    spend = groups[groups.outcome == "Total_Spend"].set_index("group")
    assert spend.loc["PhD", "median"] == df.loc[df.Education == "PhD", "Total_Spend"].median()
    assert spend.index.tolist() == ORDER


def test_numeric_attribute_is_binned_and_ordinal(campaign):
    path, df = campaign
    r = segmint.analyze_effect(path, "Income", ["MntWines", "Marital_Status"], bins=4)
    assert r.ordinal and r.binned
    t = r.tests.set_index("outcome")
    ok = df.Income.notna()
    rho, _ = sps.spearmanr(df.Income[ok], df.MntWines[ok])
    assert t.loc["MntWines", "spearman_rho"] == pytest.approx(rho)
    assert t.loc["MntWines", "missing_rows"] == 24  # Income is missing on 24 rows
    assert t.loc["Marital_Status", "test"] == "chi-square"
    assert np.isnan(t.loc["Marital_Status", "spearman_rho"])
    assert r.groups[r.groups.outcome == "MntWines"].n.sum() == 2240 - 24


def test_derive_from_config_file(campaign, tmp_path):
    path, _ = campaign
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[derive]\nTotal_Spend = "{MNT}"\n')
    r = CliRunner().invoke(
        app, ["analyze", "effect", str(path), "--config", str(cfg), "--by", "Kidhome", "--on",
              "Total_Spend"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Total_Spend" in r.output


def test_derive_rules():
    df = pd.DataFrame({"a": [1.0, 2.0, None], "b b": [3, 4, 5], "t": ["x", "y", "z"]})
    out = derive_columns(df, {"s": "a + `b b` * 2", "n": "-s / 2"})
    assert out["s"].tolist()[:2] == [7.0, 10.0] and np.isnan(out["s"].iloc[2])
    assert out["n"].tolist()[:2] == [-3.5, -5.0]
    with pytest.raises(ConfigError) as e:
        derive_columns(df, {"x": "aa + 1", "y": "__import__('os')", "z": "t * 2", "w": "a +"})
    msg = str(e.value)
    assert "did you mean 'a'" in msg
    assert "only column names, numbers" in msg
    assert "'t' is not numeric" in msg
    assert "not a valid expression" in msg
    assert "4 problem(s)" in msg
    with pytest.raises(ConfigError, match="NAME=EXPRESSION"):
        parse_assignments(["no equals sign"])


def test_bad_by_and_order_are_clear(campaign):
    path, _ = campaign
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", "effect", str(path), "--by", "Educaton", "--on", "Income"])
    assert r.exit_code == 2 and "'Educaton'" in r.output and "Education" in r.output
    r = runner.invoke(
        app,
        ["analyze", "effect", str(path), "--by", "Education", "--on", "Income", "--order", "PhD"],
    )
    assert r.exit_code == 2 and "missing" in r.output and "'Basic'" in r.output
