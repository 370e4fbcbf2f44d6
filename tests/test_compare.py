"""`segmint compare` / `--algorithm all`: every method on the same features, a documented
recommendation, the agreement matrix; end to end on Mall Customers and Online Retail."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from segmint.cli import app
from segmint.cluster import ALGORITHMS
from segmint.pipeline.compare import recommend

from .conftest import dataset


def _row(method, k, sil, stab=0.95, unstable=0, noise=0.0, share=0.1, seconds=1.0, error=""):
    return dict(
        method=method,
        k=k,
        silhouette=sil,
        stability_ari=stab,
        unstable_segments=unstable,
        noise_share=noise,
        min_segment_share=share,
        seconds=seconds,
        error=error,
    )


def test_recommendation_rule():
    t = pd.DataFrame(
        [
            _row("a", 4, 0.50),
            _row("b", 4, 0.60, stab=0.5),  # unstable: not eligible
            _row("c", 5, 0.70, noise=0.3),  # too much noise
            _row("d", 3, 0.80, share=0.01),  # a 1% segment: not actionable
            _row("e", 2, 0.90),  # k = 2 only if nothing with k >= 3 is eligible
            _row("f", 4, 0.49, stab=0.99),  # within 0.02 of "a" and more stable
            _row("g", 4, 0.99, error="failed"),
        ]
    )
    best, reason = recommend(t, min_segment_share=0.005)
    assert best == "f" and "more stable" in reason
    best, _ = recommend(t[t.method != "f"], min_segment_share=0.005)
    assert best == "a"
    best, _ = recommend(t[t.method.isin(["e", "b"])], min_segment_share=0.005)
    assert best == "e"


def _compare(path, out, *extra):
    r = CliRunner().invoke(app, ["compare", str(path), "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    assert "method:" in r.output
    table = pd.read_csv(out / "comparison.csv")
    agreement = pd.read_csv(out / "agreement.csv", index_col="method")
    manifest = json.loads((out / "manifest.json").read_text())
    return table, agreement, manifest


def _check(table, agreement, manifest):
    assert set(table.method) == set(ALGORITHMS)
    assert table.recommended.sum() == 1
    best = table.loc[table.recommended, "method"].item()
    assert manifest["metrics"]["algorithm"] == best == manifest["selection"]["algorithm"]
    ran = table[table.error.isna() | (table.error == "")]
    cols = {"k", "silhouette", "calinski_harabasz", "davies_bouldin", "stability_ari"}
    assert ran[list(cols)].notna().all().all()
    assert {"noise_share", "segment_sizes", "seconds"} <= set(table.columns)
    A = agreement.to_numpy()
    assert np.allclose(A, A.T) and np.allclose(np.diag(A), 1.0)
    assert set(agreement.index) == set(ran.method)


def test_compare_mall(tmp_path):
    path = dataset("mall_customers.csv")
    feats = "Annual Income (k$),Spending Score (1-100)"
    table, agreement, manifest = _compare(path, tmp_path, "--features", feats)
    _check(table, agreement, manifest)
    best = table[table.recommended].iloc[0]
    assert best.k == 5  # the five groups every analysis of this data finds
    assert "Methods compared" in (tmp_path / "report.html").read_text()


def test_compare_online_retail(tmp_path):
    path = dataset("online_retail.csv.gz")
    table, agreement, manifest = _compare(path, tmp_path)
    _check(table, agreement, manifest)
    best = table[table.recommended].iloc[0]
    assert best.k >= 3 and best.min_segment_share >= 0.02


@pytest.mark.parametrize("bad", ["nope"])
def test_unknown_algorithm_is_a_clear_error(bad, tmp_path):
    path = dataset("mall_customers.csv")
    r = CliRunner().invoke(app, ["run", str(path), "--algorithm", bad, "--out", str(tmp_path)])
    assert r.exit_code == 2 and "clustering.algorithm" in r.output and "hdbscan" in r.output


def test_run_and_predict_with_an_algorithm(tmp_path):
    path = dataset("mall_customers.csv")
    feats = "Annual Income (k$),Spending Score (1-100)"
    runner = CliRunner()
    r = runner.invoke(
        app, ["run", str(path), "--features", feats, "--algorithm", "gmm", "--out", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "scored.csv"
    r = runner.invoke(
        app,
        ["predict", "--run", str(tmp_path), str(path), "--out", str(out), "--algorithm", "gmm"],
    )
    assert r.exit_code == 0, r.output
    scored = pd.read_csv(out)
    probs = [c for c in scored if c.startswith("prob_")]
    assert len(probs) >= 2 and np.allclose(scored[probs].sum(axis=1), 1.0)
    assert "low_confidence" in scored
    r = runner.invoke(
        app,
        ["predict", "--run", str(tmp_path), str(path), "--out", str(out), "--algorithm", "ward"],
    )
    assert r.exit_code == 2 and "'gmm'" in r.output


def test_charts_written_as_standalone_files(tmp_path):
    path = dataset("mall_customers.csv")
    feats = "Annual Income (k$),Spending Score (1-100)"
    args = ["run", str(path), "--features", feats, "--algorithm", "ward", "--charts"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    charts = {p.name for p in (tmp_path / "charts").iterdir()}
    assert {"dendrogram.html", "scatter_3d.html", "stability.html", "plotly.min.js"} <= charts
    html = (tmp_path / "charts" / "dendrogram.html").read_text()
    assert "plotly.min.js" in html and len(html) < 500_000  # plotly.js is shared, not inlined
