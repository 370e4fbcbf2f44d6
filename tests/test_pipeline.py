"""End-to-end runs on real and synthetic data through the Python API."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

import segmint
from segmint.data.synth import generate_orders

from .conftest import dataset

MALL_FEATURES = ["Annual Income (k$)", "Spending Score (1-100)"]
MANIFEST_KEYS = {"rows", "customers", "k", "metrics", "config", "config_hash", "version", "timings"}


@pytest.fixture(scope="module")
def mall():
    return segmint.segment(dataset("mall_customers.csv"), features=MALL_FEATURES)


def test_mall_automatic_k_is_5(mall):
    assert mall.k == 5
    assert mall.manifest.selection.votes["silhouette"] == 5
    assert mall.segments["segment_name"].is_unique
    assert mall.customers["segment"].nunique() == 5
    assert len(mall.customers) == 200


def test_mall_artifacts_and_reload(mall, tmp_path):
    out = segmint.save(mall, tmp_path / "mall")
    for name in (
        "customers.parquet",
        "customers.csv",
        "segments.csv",
        "k_selection.csv",
        "quarantine.parquet",
        "model.skops",
        "manifest.json",
        "report.html",
        "config.yaml",
    ):
        assert (out / name).is_file(), name
    m = json.loads((out / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(m)
    assert set(m["rows"]) == {"read", "kept", "quarantined"}
    assert set(m["metrics"]) >= {"silhouette", "calinski_harabasz", "davies_bouldin"}
    assert m["rows"]["read"] == 200 and m["rows"]["kept"] == 200
    seg = pd.read_csv(out / "segments.csv")
    assert {"size", "share_customers", "segment_name", "action"} <= set(seg.columns)
    assert len(pd.read_csv(out / "k_selection.csv")) == 9
    html = (out / "report.html").read_text()
    assert "plotly" in html.lower() and "How many segments" in html
    assert re.search(r"<(script|link)[^>]+(src|href)=", html) is None  # self-contained
    model = segmint.load_model(str(out))
    again = model.predict_frame(mall.features.frame)
    np.testing.assert_array_equal(again["segment"].to_numpy(), mall.customers["segment"])


@pytest.mark.parametrize("seed", [1, 4, 9])
def test_mall_k_is_5_whatever_the_seed(seed):
    r = segmint.segment(dataset("mall_customers.csv"), features=MALL_FEATURES, seed=seed)
    assert r.k == 5


def test_memory_limit_changes_nothing_but_memory(mall):
    capped = segmint.segment(
        dataset("mall_customers.csv"), features=MALL_FEATURES, memory_limit="256MB"
    )
    np.testing.assert_array_equal(capped.customers["segment"], mall.customers["segment"])
    assert capped.manifest.config_hash == mall.manifest.config_hash


def test_same_seed_same_result():
    a = segmint.segment(dataset("mall_customers.csv"), features=MALL_FEATURES, seed=3)
    b = segmint.segment(dataset("mall_customers.csv"), features=MALL_FEATURES, seed=3)
    np.testing.assert_array_equal(a.customers["segment"], b.customers["segment"])
    pd.testing.assert_frame_equal(a.k_selection, b.k_selection)
    assert a.manifest.config_hash == b.manifest.config_hash


def test_marketing_campaign_reports_imputed_and_clipped():
    r = segmint.segment(dataset("marketing_campaign.csv"))
    m = r.manifest.model_dump(exclude_none=True)
    inp = m["inputs"][0]
    assert inp["delimiter"] == "\t" and inp["kind"] == "customers"
    assert m["rows"] == {"read": 2240, "kept": 2240, "quarantined": {}}
    assert m["preprocessing"]["imputed"] == {"Income": 24}
    clipped = m["preprocessing"]["clipped"]
    assert clipped.get("Income", 0) >= 1  # the 666,666 income
    assert clipped.get("Year_Birth", 0) >= 1  # births down to 1893
    assert inp["excluded_columns"] == {"Z_CostContact": "constant", "Z_Revenue": "constant"}
    assert "Dt_Customer_days" in m["features"]["numeric"]
    assert {"Education", "Marital_Status"} <= set(m["features"]["categorical"])
    assert 2 <= r.k <= 10


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    info = generate_orders(6000, d / "orders.parquet", seed=7)
    return d, info


def test_synthetic_planted_types_recovered(synthetic):
    _, info = synthetic
    r = segmint.segment(info["path"], seed=0)
    truth = pd.read_parquet(info["types_path"])
    m = r.customers.merge(truth, on="customer_id")
    assert len(m) == 6000
    ari = adjusted_rand_score(m["planted_type"], m["segment"])
    print(f"synthetic recovery: k={r.k}, ARI={ari:.3f}")
    assert r.k == truth["planted_type"].nunique()
    assert ari >= 0.9
    # predict on the training customers reproduces their labels
    pred = segmint.predict(r, info["path"])
    both = pred.merge(r.customers[["customer_id", "segment"]], on="customer_id")
    assert len(both) == 6000
    assert (both["segment_x"] == both["segment_y"]).all()


def test_generator_is_deterministic(tmp_path):
    a = generate_orders(500, tmp_path / "a.parquet", seed=11)
    b = generate_orders(500, tmp_path / "b.parquet", seed=11)
    assert a["lines"] == b["lines"]
    pd.testing.assert_frame_equal(pd.read_parquet(a["path"]), pd.read_parquet(b["path"]))


def test_orders_and_attributes_joined(synthetic, tmp_path):
    _, info = synthetic
    truth = pd.read_parquet(info["types_path"])
    rng = np.random.default_rng(0)
    attrs = pd.DataFrame(
        {
            "customer_id": truth["customer_id"],
            "age": rng.integers(18, 80, len(truth)),
            "region": rng.choice(["north", "south"], len(truth)),
        }
    ).iloc[:5000]
    attrs.to_csv(tmp_path / "attrs.csv", index=False)
    r = segmint.segment(info["path"], tmp_path / "attrs.csv")
    assert "age" in r.features.numeric and "region" in r.features.categorical
    assert r.manifest.customers_detail["customers_without_attributes"] == 1000
    assert [i.kind for i in r.manifest.inputs] == ["transactions", "customers"]
    assert r.manifest.rows.read == info["lines"] + 5000


def test_mismatched_or_foreign_model_is_refused(mall, tmp_path):
    out = segmint.save(mall, tmp_path / "run")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["config_hash"] = "0" * 16
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(segmint.ArtifactError, match="does not match"):
        segmint.load_model(str(out))
    (out / "model.skops").write_bytes(b"not a model")
    with pytest.raises(segmint.ArtifactError, match="not a readable skops model"):
        segmint.SegmentationModel.load(out / "model.skops")
