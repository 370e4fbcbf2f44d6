"""Every registered clustering method: planted structure, invariances, parameter
validation, and predict-after-reload through the pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.utils._param_validation import InvalidParameterError

import segmint
from segmint.cluster import ALGORITHMS, make_segmenter
from segmint.config import Clustering

DENSITY = {"dbscan", "hdbscan"}
NUMERIC = [m for m in ALGORITHMS if m != "kprototypes"]  # K-Prototypes needs categories


def _scaled(X: np.ndarray) -> np.ndarray:
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(
        2400, centers=4, n_features=3, cluster_std=0.5, random_state=1, center_box=(-8, 8)
    )
    return _scaled(X), y


@pytest.mark.parametrize("name", NUMERIC)
def test_blobs_recovered(name, blobs):
    X, y = blobs
    seg = make_segmenter(Clustering(algorithm=name), 0).fit(X)
    assert seg.k_ == 4
    assert ari(y, seg.labels_) >= 0.9
    sizes = np.bincount(seg.labels_[seg.labels_ >= 0])
    assert (np.diff(sizes) <= 0).all()  # segment 0 is the largest: labels do not depend on seed
    assert seg.centers_.shape == (4, 3)
    assert seg.selection_["chosen"].sum() == 1 and seg.decision_.reason


@pytest.mark.parametrize("name", NUMERIC)
def test_deterministic_and_row_order_invariant(name, blobs):
    X, _ = blobs
    a = make_segmenter(Clustering(algorithm=name), 3).fit(X).labels_
    b = make_segmenter(Clustering(algorithm=name), 3).fit(X).labels_
    assert (a == b).all()
    perm = np.random.default_rng(0).permutation(len(X))
    c = make_segmenter(Clustering(algorithm=name), 3).fit(X[perm]).labels_
    back = np.empty_like(c)
    back[perm] = c
    assert ari(a, back) > 0.95


def test_density_methods_beat_kmeans_on_moons():
    X, y = make_moons(1500, noise=0.05, random_state=0)
    X = _scaled(X)
    km = make_segmenter(Clustering(algorithm="kmeans", k=2), 0).fit(X)
    for name in DENSITY:
        seg = make_segmenter(Clustering(algorithm=name), 0).fit(X)
        assert ari(y, seg.labels_) > ari(y, km.labels_) + 0.3, name


def test_mixture_beats_kmeans_on_anisotropic_gaussians():
    X, y = make_blobs(3000, centers=3, random_state=170)
    X = _scaled(X @ np.array([[0.6, -0.6], [-0.4, 0.8]]))
    km = make_segmenter(Clustering(algorithm="kmeans", k=3), 0).fit(X)
    gm = make_segmenter(Clustering(algorithm="gmm", k=3), 0).fit(X)
    assert ari(y, gm.labels_) > 0.95 > ari(y, km.labels_) + 0.2
    assert np.allclose(gm.proba_.sum(axis=1), 1.0)
    assert (gm.proba_.argmax(axis=1) == gm.labels_).all()


def test_mixture_k_by_bic(blobs):
    X, _ = blobs
    gm = make_segmenter(Clustering(algorithm="gmm"), 0).fit(X)
    t = gm.selection_
    assert t.loc[t["bic"].idxmin(), "k"] == gm.k_ == 4
    assert "lowest BIC" in gm.decision_.reason


INVALID = {
    "kmeans": {"variant": "fast", "n_init": 0},
    "minibatch": {"k": 1},
    "bisecting": {"min_segment_share": 0.7},
    "ward": {"linkage": "single", "max_fit_sample": 5},
    "average": {"k_min": 1},
    "complete": {"bootstrap": 0},
    "gmm": {"covariance": "spherical", "low_confidence": 1.5},
    "dbscan": {"eps": -1.0, "min_samples": 1},
    "hdbscan": {"method": "optics", "min_cluster_size": 1},
    "ensemble": {"resamples": 0, "sample": 10},
    "kprototypes": {"max_fit_sample": 5, "n_init": 0},
}


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_invalid_parameters_are_named(name, blobs):
    X, _ = blobs
    assert set(INVALID) == set(ALGORITHMS)
    for param, value in INVALID[name].items():
        seg = make_segmenter(Clustering(algorithm=name), 0).set_params(**{param: value})
        with pytest.raises(InvalidParameterError, match=f"'{param}' parameter"):
            seg.fit(X[:200])


@pytest.mark.parametrize("name", NUMERIC)
def test_predict_after_reload_reproduces_training_labels(name, blobs, tmp_path):
    """Density methods: points in no dense group may be re-read as members of a nearby one
    (HDBSCAN) or a border point may join another segment within eps (DBSCAN); documented."""
    X, _ = blobs
    frame = pd.DataFrame(X[:1200], columns=["a", "b", "c"])
    frame.insert(0, "customer_id", [f"c{i}" for i in range(len(frame))])
    result = segmint.segment(frame, clustering={"algorithm": name})
    model = segmint.load_model(str(segmint.save(result, tmp_path / "run")))
    scored = model.predict_frame(result.features.frame)
    same = (scored.segment.to_numpy() == result.customers.segment.to_numpy()).mean()
    assert same >= (0.9 if name in DENSITY else 1.0), same
    if name == "gmm":
        probs = [c for c in result.customers if c.startswith("prob_")]
        assert len(probs) == result.k and "low_confidence" in result.customers
    if name in DENSITY and (result.customers.segment < 0).any():
        assert (
            result.customers.loc[result.customers.segment < 0, "segment_name"] == "Outliers"
        ).all()


def test_stability_marks_a_segment_that_does_not_survive_resampling():
    from segmint.cluster.registry import refit_factory
    from segmint.evaluate.stability import bootstrap_stability, jaccard_per_segment

    assert np.allclose(jaccard_per_segment(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 7]), 2), 1)
    assert np.allclose(
        jaccard_per_segment(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]), 2), [2 / 3, 1 / 2]
    )
    # three clear blobs, forced into k = 4: one blob is split arbitrarily, so the two halves
    # are unstable while the intact blobs are not
    X, _ = make_blobs(1500, centers=3, n_features=2, cluster_std=0.4, random_state=5)
    X = _scaled(X)
    c = Clustering(algorithm="kmeans", k=4)
    seg = make_segmenter(c, 0).fit(X)
    st = bootstrap_stability(refit_factory(c, 0, seg), X, seg.labels_, 4, runs=8, seed=1)
    assert st.segments.unstable.sum() >= 1 and not st.segments.unstable.all()
    seg3 = make_segmenter(c.model_copy(update={"k": 3}), 0).fit(X)
    st3 = bootstrap_stability(refit_factory(c, 0, seg3), X, seg3.labels_, 3, runs=5, seed=1)
    assert st3.ari > 0.95 and not st3.segments.unstable.any() and st3.ari > st.ari


def test_ensemble_agreement_and_segment_stability(blobs):
    X, y = blobs
    seg = make_segmenter(Clustering(algorithm="ensemble"), 0).fit(X)
    assert seg.base_count_ >= 30
    assert ari(y, seg.labels_) > 0.95
    assert seg.agreement_.shape == (len(X),) and np.median(seg.agreement_) > 0.6
    assert (seg.segment_stability_ > 0.6).all()
    C = seg.coassociation_
    assert np.allclose(C, C.T) and np.allclose(np.diag(C), 1.0)
    assert "Consensus of" in seg.decision_.reason


def _mixed(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three planted groups told apart by a category and, weakly, by one number."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    colour = np.array(["red", "green", "blue"])[y]
    flip = rng.random(n) < 0.05
    colour[flip] = rng.choice(["red", "green", "blue"], flip.sum())
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "spend": y * 1.0 + rng.normal(0, 0.6, n),
            "visits": rng.normal(0, 1, n),
            "colour": colour,
            "channel": rng.choice(["web", "store", "app", "phone"], n),
        }
    )
    return frame, y


def test_kprototypes_mixed_data_and_reload(tmp_path):
    frame, y = _mixed()
    result = segmint.segment(frame, clustering={"algorithm": "kprototypes", "k": 3})
    kp = ari(y, result.customers.segment)
    model = segmint.load_model(str(segmint.save(result, tmp_path / "run")))
    scored = model.predict_frame(result.features.frame)
    assert (scored.segment.to_numpy() == result.customers.segment.to_numpy()).all()
    # one-hot k-means lets the two noise features pull the groups apart (measured 0.32);
    # K-Prototypes weighs the defining category as one feature among four (0.60)
    km = segmint.segment(frame, clustering={"algorithm": "kmeans", "k": 3})
    assert kp > 0.55 and kp > ari(y, km.customers.segment) + 0.2


def test_kprototypes_refuses_numeric_only_data(blobs):
    from segmint.exceptions import InputError

    X, _ = blobs
    with pytest.raises(InputError, match="needs at least one categorical feature"):
        make_segmenter(Clustering(algorithm="kprototypes"), 0).fit(X)


def test_stability_per_k_peaks_at_the_planted_k(blobs):
    from segmint.evaluate.stability import stability_per_k

    X, _ = blobs
    per_k = stability_per_k(
        lambda k, s: make_segmenter(Clustering(algorithm="kmeans", k=k, n_init=1), s),
        X,
        [3, 4, 5, 6],
        runs=3,
        seed=2,
    )
    assert per_k[4] > 0.99 and per_k[4] > max(per_k[5], per_k[6])


def test_kprototypes_recovers_blobs_with_a_category(blobs):
    X, y = blobs
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    band = np.array(["north", "south", "east", "west"])[y]
    noisy = rng.random(len(y)) < 0.1
    band[noisy] = rng.choice(["north", "south", "east", "west"], noisy.sum())
    frame["region"] = band
    frame.insert(0, "customer_id", [f"c{i}" for i in range(len(frame))])
    result = segmint.segment(frame, clustering={"algorithm": "kprototypes", "stability_runs": 0})
    assert result.k == 4 and ari(y, result.customers.segment) >= 0.9
