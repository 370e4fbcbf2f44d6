"""Small but legal data: a shop with a few hundred customers gets segments, and a handful of
customers gets segments or one clear refusal (exit code 2) — never an internal error (exit 1)
and no numpy/SciPy/scikit-learn warning on the terminal.

Inputs are drawn from the real datasets in ``../shared/datasets`` (order lines of n Online
Retail customers, rows of the Mall and Customer Personality tables) with fixed seeds. The rule
under test (``segmint.evaluate.select_k``): a segment needs at least two customers, so n
customers allow at most n // 2 segments and fewer than four are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from segmint.cli import app
from segmint.cluster.registry import make_segmenter
from segmint.config import ALGORITHMS, Clustering
from segmint.evaluate.select_k import MIN_CUSTOMERS, choose_k, max_segments
from segmint.evaluate.stability import bootstrap_stability, stability_per_k
from segmint.exceptions import SegmintError
from segmint.explain.drivers import explain_drivers
from segmint.predictive.churn import check_classes

from .conftest import dataset

# The code's own warnings fail the test: degenerate cases are handled, not warned about.
pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::UserWarning"),  # incl. ConvergenceWarning, metric ones
]

runner = CliRunner()
REFUSAL = "too few to segment"  # the minimum-size refusal names what is needed
DENSITY = {"dbscan", "hdbscan"}


# ------------------------------------------------------------------ inputs from real data


@pytest.fixture(scope="module")
def retail() -> pd.DataFrame:
    """Online Retail order lines, read once for the module."""
    return pd.read_csv(
        dataset("online_retail.csv.gz"),
        dtype={"CustomerID": str, "InvoiceNo": str, "StockCode": str},
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("small")


def order_lines(retail: pd.DataFrame, n: int, seed: int, folder: Path) -> Path:
    """Every line of ``n`` customers with at least one purchase (so the run sees exactly
    ``n`` customers; returns-only customers are not customers)."""
    buys = (
        (retail["Quantity"] > 0)
        & (retail["UnitPrice"] > 0)
        & ~retail["InvoiceNo"].str.startswith("C")
    )
    ids = np.sort(retail.loc[buys, "CustomerID"].dropna().unique())
    pick = np.random.default_rng(seed).choice(ids, n, replace=False)
    path = folder / f"lines_{n}_{seed}.csv"
    retail[retail["CustomerID"].isin(pick)].to_csv(path, index=False)
    return path


def customer_table(n: int, seed: int, folder: Path) -> Path:
    """``n`` rows of Mall (n <= 200) or of Customer Personality (tab-separated, above)."""
    if n <= 200:
        frame = pd.read_csv(dataset("mall_customers.csv"), dtype={"CustomerID": str})
        path = folder / f"mall_{n}_{seed}.csv"
        frame.sample(n, random_state=seed).to_csv(path, index=False)
    else:
        frame = pd.read_csv(dataset("marketing_campaign.csv"), sep="\t")
        path = folder / f"marketing_{n}_{seed}.csv"
        frame.sample(n, random_state=seed).to_csv(path, index=False, sep="\t")
    return path


def marketing(n: int, seed: int, folder: Path) -> Path:
    """``n`` rows of Customer Personality: numbers and categories (K-Prototypes' case)."""
    frame = pd.read_csv(dataset("marketing_campaign.csv"), sep="\t")
    path = folder / f"marketing_{n}_{seed}.csv"
    frame.sample(n, random_state=seed).to_csv(path, index=False, sep="\t")
    return path


# ------------------------------------------------------------------ running and checking


def cli(*args: object) -> object:
    """Invoke the CLI; whatever happens, it is a result (0) or a clean refusal (2)."""
    res = runner.invoke(app, [str(a) for a in args])
    assert "internal error" not in res.output, res.output
    assert "Traceback" not in res.output, res.output
    assert res.exit_code in (0, 2), res.output
    return res


def valid_run(out: Path, data: Path, n: int, *, k_max: int = 10, method: str = "kmeans") -> dict:
    """A usable run folder: everyone has a segment, k within what n allows, the report and
    the model written, and the saved model scores the same customers."""
    manifest = json.loads((out / "manifest.json").read_text())
    customers = pd.read_parquet(out / "customers.parquet")
    assert manifest["customers"] == len(customers) == n
    assert customers["segment_name"].notna().all()
    segments = customers["segment"]
    noise = method in DENSITY or method == "all"  # compare may recommend a density method
    assert segments.notna().all() and (segments >= (-1 if noise else 0)).all()
    assert 2 <= manifest["k"] <= min(k_max, max_segments(n))
    assert (out / "report.html").stat().st_size > 0
    assert (out / "model.skops").is_file() and (out / "summary.md").is_file()
    scored = out / "scored.csv"
    res = cli("predict", "--run", out, data, "--out", scored)
    assert res.exit_code == 0, res.output
    scores = pd.read_csv(scored, dtype={"customer_id": str})
    assert len(scores) == n and scores["segment"].notna().all()
    if method in {"kmeans", "minibatch", "bisecting", "ward", "average", "complete"}:
        # nearest-centre methods: the saved model places its own customers where the run did
        mine = customers.set_index(customers["customer_id"].astype(str))["segment"]
        assert (scores.set_index("customer_id")["segment"] == mine.loc[scores.customer_id]).all()
    return manifest


# ------------------------------------------------------------------ the default, every size


@pytest.mark.parametrize("n", [3, 5, 9, 20, 150, 250, 400])
def test_order_lines_of_every_size(retail, folder, n):
    data = order_lines(retail, n, seed=n, folder=folder)
    out = folder / f"run_lines_{n}"
    res = cli("run", data, "--out", out)
    if n < MIN_CUSTOMERS:
        assert res.exit_code == 2
        assert REFUSAL in res.output and f"at least {MIN_CUSTOMERS} customers" in res.output
        return
    assert res.exit_code == 0, res.output
    m = valid_run(out, data, n)
    assert m["churn"] is None or "skipped" in m["churn"] or "model" in m["churn"]


@pytest.mark.parametrize("n", [3, 5, 9, 20, 150, 250, 400])
def test_customer_tables_of_every_size(folder, n):
    data = customer_table(n, seed=n, folder=folder)
    out = folder / f"run_table_{n}"
    res = cli("run", data, "--out", out)
    if n < MIN_CUSTOMERS:
        assert res.exit_code == 2 and REFUSAL in res.output
        return
    assert res.exit_code == 0, res.output
    valid_run(out, data, n)


# ------------------------------------------------------------------ every method


@pytest.mark.parametrize("method", [*ALGORITHMS, "all"])
def test_every_method_on_twenty_customers(folder, method):
    """20 customers with numbers and categories. Density methods may find a single dense
    group at this size: then they refuse and say what to change; every other method
    segments."""
    data = marketing(20, seed=3, folder=folder)
    out = folder / f"run_method_{method}"
    res = cli("run", data, "--algorithm", method, "--out", out)
    if method in DENSITY and res.exit_code == 2:
        assert "dense group" in res.output and "Expected:" in res.output
        return
    assert res.exit_code == 0, res.output
    valid_run(out, data, 20, method=method)


@pytest.mark.parametrize("method", sorted(DENSITY))
def test_density_methods_on_the_mall(folder, method):
    """The whole Mall table (200 customers, a small shop): the density methods, which may
    refuse twenty customers, find their groups (and their Outliers) here."""
    data = dataset("mall_customers.csv")
    out = folder / f"run_mall_{method}"
    res = cli("run", data, "--algorithm", method, "--out", out)
    assert res.exit_code == 0, res.output
    valid_run(out, data, 200, method=method)


@pytest.mark.parametrize("method", ["all", "dbscan", "gmm"])
def test_stacks_of_identical_customers(folder, method):
    """12 customers who are 4 copies each of 3 Mall customers: k is bounded by the 3
    distinct profiles (no scikit-learn warning about fewer distinct points than clusters),
    and DBSCAN's knee at distance 0 becomes a radius that joins only identical customers."""
    mall = pd.read_csv(dataset("mall_customers.csv"), dtype={"CustomerID": str})
    rows = mall.sample(3, random_state=2).loc[lambda d: d.index.repeat(4)].copy()
    rows["CustomerID"] = [f"c{i}" for i in range(len(rows))]
    data = folder / "stacks.csv"
    rows.to_csv(data, index=False)
    out = folder / f"run_stacks_{method}"
    res = cli("run", data, "--algorithm", method, "--out", out)
    assert res.exit_code == 0, res.output
    m = valid_run(out, data, 12, method=method)
    assert m["k"] == 3
    customers = pd.read_parquet(out / "customers.parquet")
    assert customers.groupby("segment").size().tolist() == [4, 4, 4]


# ------------------------------------------------------------------ k beyond the data


def test_compare_on_two_customers_is_refused(retail, folder):
    data = order_lines(retail, 2, seed=1, folder=folder)
    res = cli("compare", data, "--out", folder / "cmp2")
    assert res.exit_code == 2
    assert REFUSAL in res.output and f"at least {MIN_CUSTOMERS} customers" in res.output
    assert res.output.count("too few") == 1  # one refusal, not one per method


def test_k_max_beyond_the_customers_is_narrowed_with_the_reason(retail, folder):
    data = order_lines(retail, 20, seed=7, folder=folder)
    out = folder / "kmax"
    res = cli("run", data, "--k-max", 50, "--out", out)
    assert res.exit_code == 0, res.output
    m = valid_run(out, data, 20, k_max=50)
    sel = m["selection"]
    assert sel["k_range"] == [2, 50]
    assert max(sel["k_tried"]) == max_segments(20)
    assert "narrowed to 2..10" in sel["reason"] and "20 customers" in sel["reason"]


def test_fixed_k_beyond_the_customers_is_refused_and_one_within_is_kept(folder):
    data = customer_table(9, seed=1, folder=folder)
    res = cli("run", data, "--k", 8, "--out", folder / "k8")
    assert res.exit_code == 2
    assert "k = 8 cannot be honoured" in res.output and "(clustering.k)" in res.output
    assert "error [input.too_few_customers]" in res.output
    assert "(command-line option --k)" in " ".join(res.output.split())
    assert f"at most {max_segments(9)} segments" in res.output
    res = cli("run", data, "--k-min", 6, "--k-max", 8, "--out", folder / "kmin6")
    assert res.exit_code == 2 and "k_min = 6" in res.output
    out = folder / "k4"
    res = cli("run", data, "--k", 4, "--out", out)
    assert res.exit_code == 0, res.output
    m = valid_run(out, data, 9)
    assert m["k"] == 4 and "fixed by the user" in m["selection"]["reason"]


# ------------------------------------------------------------------ the steps themselves


def test_drivers_with_a_one_customer_segment():
    """A segment of one customer cannot be held out: the surrogate still learns it, its own
    importance is undefined (left out and listed), the rest is computed."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [30, 12, 1])
    frame = pd.DataFrame({"a": labels * 3.0 + rng.normal(0, 0.3, 43), "b": rng.normal(0, 1, 43)})
    d = explain_drivers(frame, labels, ["a", "b"], [], repeats=3)
    assert d.fidelity["undefined_segments"] == [2]
    assert set(d.importance["scope"].astype(str)) == {"all", "0", "1"}
    assert d.top("all", 1).feature.iloc[0] == "a"
    assert d.fidelity["n_train"] + d.fidelity["n_test"] == 43


def _kmeans(k: int, seed: int = 0):
    return make_segmenter(Clustering(k=k, n_init=1, bootstrap=10), seed)


def test_stability_on_four_customers_is_undefined_rather_than_made_up():
    """Two segments of two: any subsample that holds them is all four customers, so every
    refit would see the same data — no resampling, no stability to measure."""
    X = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5]], dtype=np.float32)
    st = bootstrap_stability(lambda: _kmeans(2), X, np.array([0, 0, 1, 1]), 2, runs=3)
    assert np.isnan(st.ari) and st.segments["jaccard"].isna().all()
    assert "undefined" in st.note and not st.segments["unstable"].any()
    five = np.vstack([X, [[5.2, 5]]]).astype(np.float32)  # one more: 4 of 5 is a subsample
    st = bootstrap_stability(lambda: _kmeans(2), five, np.array([0, 0, 1, 1, 1]), 2, runs=3)
    assert np.isfinite(st.ari) and st.note == ""


def test_stability_per_k_is_nan_where_k_cannot_be_refitted():
    X = np.random.default_rng(1).normal(size=(8, 2)).astype(np.float32)
    per_k = stability_per_k(lambda k, s: _kmeans(k, s), X, [2, 4])
    assert np.isfinite(per_k[2]) and np.isnan(per_k[4])  # 4 segments of 2 need all 8


def test_churn_needs_a_few_customers_of_each_class():
    check_classes(np.array([True] * 5 + [False] * 9), np.array([True] * 6 + [False] * 5))
    with pytest.raises(SegmintError, match="at least 5 churned and 5 retained"):
        check_classes(np.array([True] * 5 + [False] * 9), np.array([True, True, False]))


def test_a_k_with_a_one_customer_segment_is_not_eligible():
    t = pd.DataFrame(
        {
            "k": [2, 3, 4],
            "silhouette": [0.3, 0.5, 0.4],
            "silhouette_low": [0.28, 0.48, 0.38],
            "silhouette_high": [0.32, 0.52, 0.42],
            "calinski_harabasz": [100, 300, 200],
            "davies_bouldin": [1.0, 0.5, 0.7],
            "inertia": [100, 40, 35],
            "min_segment_share": [0.3, 0.02, 0.1],
            "min_segment_size": [30, 1, 10],
        }
    )
    assert choose_k(t, min_segment_share=0.005).k != 3
    t["min_segment_size"] = 1
    d = choose_k(t, min_segment_share=0.005)
    assert "all were considered" in d.reason
