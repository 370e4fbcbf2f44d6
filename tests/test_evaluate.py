import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_samples

from segmint.cluster import KMeansSegmenter
from segmint.evaluate import metrics
from segmint.evaluate.select_k import choose_k


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=1500, centers=4, n_features=5, random_state=3)
    return X.astype(np.float32), y


def test_silhouette_equals_sklearn(blobs):
    X, y = blobs
    labels = np.random.default_rng(0).integers(0, 5, len(X))
    for lab in (y, labels):
        ours = metrics.silhouette_values(X, lab)
        np.testing.assert_allclose(ours, silhouette_samples(X, lab), atol=1e-5)


def test_silhouette_many_equals_one_at_a_time(blobs):
    X, y = blobs
    other = (y + 1) % 3
    many = metrics.silhouette_many(X, [y, other])
    np.testing.assert_allclose(many[0], metrics.silhouette_values(X, y))
    np.testing.assert_allclose(many[1], metrics.silhouette_values(X, other))


def test_ch_from_inertia_equals_sklearn(blobs):
    X, y = blobs
    centers = np.vstack([X[y == c].mean(axis=0) for c in range(4)])
    labels, inertia = metrics.assign(X, centers)
    tss = metrics.total_sum_of_squares(X)
    ch = metrics.calinski_harabasz_from_inertia(tss, inertia, len(X), 4)
    assert ch == pytest.approx(calinski_harabasz_score(X, labels), rel=1e-4)
    assert metrics.davies_bouldin(X, labels) == pytest.approx(davies_bouldin_score(X, labels))


def test_bootstrap_interval_brackets_mean():
    vals = np.random.default_rng(1).normal(0.4, 0.2, 2000)
    s = metrics.bootstrap_mean(vals, bootstrap=200, seed=0)
    assert s.low < s.mean < s.high
    assert s.high - s.low < 0.05


def test_knee_finds_elbow():
    ks = list(range(2, 11))
    inertia = [100, 60, 30, 27, 25, 23.5, 22, 21, 20]
    assert metrics.knee(ks, inertia) == 4
    assert metrics.knee(ks, [10.0] * 9) is None


def _table(sil, low, ch, db, inertia):
    ks = list(range(2, 2 + len(sil)))
    return pd.DataFrame(
        {
            "k": ks,
            "silhouette": sil,
            "silhouette_low": low,
            "silhouette_high": [s + 0.02 for s in sil],
            "calinski_harabasz": ch,
            "davies_bouldin": db,
            "inertia": inertia,
            "min_segment_share": 0.1,
        }
    )


def test_k2_guard_reruns_vote_when_k2_not_clearly_better():
    t = _table(
        sil=[0.40, 0.39, 0.36, 0.30],
        low=[0.38, 0.37, 0.34, 0.28],
        ch=[900, 800, 850, 700],
        db=[1.0, 0.9, 1.1, 1.2],
        inertia=[100, 60, 50, 45],
    )
    d = choose_k(t, min_segment_share=0.005)
    assert d.k == 3
    assert "re-run over k ≥ 3" in d.reason


def test_k2_kept_when_clearly_better():
    t = _table(
        sil=[0.70, 0.39, 0.36, 0.30],
        low=[0.66, 0.37, 0.34, 0.28],
        ch=[900, 800, 850, 700],
        db=[0.5, 0.9, 1.1, 1.2],
        inertia=[100, 90, 85, 82],
    )
    assert choose_k(t, min_segment_share=0.005).k == 2


def test_small_segments_make_k_ineligible():
    t = _table(
        sil=[0.30, 0.50, 0.40],
        low=[0.28, 0.48, 0.38],
        ch=[100, 300, 200],
        db=[1.0, 0.5, 0.7],
        inertia=[100, 40, 35],
    )
    t.loc[t.k == 3, "min_segment_share"] = 0.001
    assert choose_k(t, min_segment_share=0.005).k != 3


def test_segmenter_recovers_blobs_and_is_label_order_invariant(blobs):
    from sklearn.metrics import adjusted_rand_score

    X, y = blobs
    seg = KMeansSegmenter(random_state=0).fit(X)
    assert seg.k_ == 4
    assert adjusted_rand_score(y, seg.labels_) > 0.99
    sizes = np.bincount(seg.labels_)
    assert list(sizes) == sorted(sizes, reverse=True)  # segment 0 is the largest
    perm = np.random.default_rng(5).permutation(len(X))
    seg2 = KMeansSegmenter(random_state=0).fit(X[perm])
    assert adjusted_rand_score(seg.labels_[perm], seg2.labels_) > 0.99
    np.testing.assert_array_equal(seg.predict(X), seg.labels_)


def test_k2_on_a_tie_is_not_kept():
    # k = 2: silhouette + CH; k = 4: DB + elbow. A tie must not hand marketing two segments.
    t = _table(
        sil=[0.60, 0.40, 0.39, 0.41],
        low=[0.58, 0.38, 0.37, 0.39],
        ch=[900, 800, 700, 600],
        db=[1.2, 1.1, 0.8, 1.0],
        inertia=[100, 90, 40, 38],
    )
    assert choose_k(t, min_segment_share=0.005).votes["elbow"] == 4
    d = choose_k(t, min_segment_share=0.005)
    assert d.k >= 3
    assert "tied for the most votes" in d.reason


def test_davies_bouldin_equals_sklearn_on_random_labels(blobs):
    X, _ = blobs
    for seed in range(3):
        lab = np.random.default_rng(seed).integers(0, 6, len(X))
        assert metrics.davies_bouldin(X, lab) == pytest.approx(davies_bouldin_score(X, lab))
    gappy = np.array([0, 2, 5])[np.random.default_rng(9).integers(0, 3, len(X))]
    assert metrics.davies_bouldin(X, gappy) == pytest.approx(davies_bouldin_score(X, gappy))
    assert np.allclose(
        metrics.group_sums(X, gappy, 6)[[0, 2, 5]],
        [X[gappy == g].sum(axis=0) for g in (0, 2, 5)],
        rtol=1e-5,
    )
