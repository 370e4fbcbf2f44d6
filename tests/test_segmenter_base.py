"""The segmenter bases on their own: the k sweep of ``cluster.sweep`` driven by a tiny "fit one
k" method, size ordering and relabelling, candidate scores under label permutation, the
ensemble with injected base segmenters, and the one-way imports inside ``cluster``."""

from __future__ import annotations

import ast
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.utils._param_validation import Interval

import segmint.cluster
from segmint.cluster import EnsembleSegmenter, KMeansSegmenter, KSweepSegmenter
from segmint.cluster.candidates import Candidates, candidate_row
from segmint.cluster.sweep import Candidate, Final
from segmint.evaluate import metrics
from segmint.evaluate.select_k import Decision
from segmint.exceptions import InputError

SIZES = (50, 200, 100)  # planted groups at 0, 10 and 20: the largest is the middle one


class LineSegmenter(KSweepSegmenter):
    """Fits one k by spreading k centres evenly between the smallest and the largest row of
    the fit sample; ``reverse`` numbers them from the top (another arbitrary numbering)."""

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        **KSweepSegmenter._parameter_constraints,
        "sweep_sample": [Interval(Integral, 10, None, closed="left")],
        "reverse": ["boolean"],
    }

    def __init__(
        self,
        *,
        k=None,
        k_min=2,
        k_max=6,
        sweep_sample=10_000,
        silhouette_sample=10_000,
        bootstrap=50,
        min_segment_share=0.005,
        random_state=0,
        reverse=False,
    ):
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.sweep_sample = sweep_sample
        self.silhouette_sample = silhouette_sample
        self.bootstrap = bootstrap
        self.min_segment_share = min_segment_share
        self.random_state = random_state
        self.reverse = reverse

    def _prepare(self, fit_rows, progress):
        self.fitted_ks_ = []
        return fit_rows

    def _fit_k(self, sweep, k):
        self.fitted_ks_.append(k)
        lo, hi = sweep.fit_rows.min(axis=0), sweep.fit_rows.max(axis=0)
        centers = np.linspace(lo, hi, k).astype(np.float32)
        if self.reverse:
            centers = centers[::-1].copy()
        labels, inertia = metrics.assign(sweep.X, centers)
        spacing = float(np.abs(centers[1] - centers[0]).sum())
        return Candidate(
            centers, labels.astype(np.int32), inertia=inertia, scores={"spacing": spacing}
        )

    def _finish(self, sweep, k, model):
        labels, inertia = metrics.assign(sweep.X, model)
        return Final(labels, k, model, inertia, model=model)

    def _keep(self, sweep, final, order):
        self.own_centers_ = final.model
        self.order_ = order


class TwoSegmenter(LineSegmenter):
    """Overrides the decision: always two segments."""

    def _decide(self, table, krange):
        return Decision(2, {"rule": 2}, "always two")


def _line(seed: int = 0, at: tuple[float, ...] = (0, 10, 20)) -> tuple[np.ndarray, np.ndarray]:
    """Three groups of ``SIZES`` customers on a line, at ``at``, shuffled."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), SIZES)
    X = (np.asarray(at)[y] + rng.normal(0, 0.3, len(y)))[:, None].astype(np.float32)
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def test_sweep_fits_each_k_chooses_by_vote_and_numbers_segments_by_size():
    X, y = _line()
    said: list[str] = []
    seg = LineSegmenter().fit(X, progress=said.append)
    assert seg.fitted_ks_ == [2, 3, 4, 5, 6]
    assert said == [f"k={k}" for k in range(2, 7)] + ["silhouette", "final k=3"]
    t = seg.selection_
    assert t["k"].tolist() == [2, 3, 4, 5, 6] and "spacing" in t and "silhouette" in t
    assert t.loc[t["chosen"], "k"].tolist() == [3]
    assert seg.k_ == seg.decision_.k == 3 and seg.decision_.votes["silhouette"] == 3
    # the method's own numbering runs 0 -> 20; segments are numbered by size instead
    assert np.bincount(seg.labels_).tolist() == [200, 100, 50]
    assert ari(y, seg.labels_) == 1.0
    assert (seg.labels_[y == 1] == 0).all() and (seg.labels_[y == 0] == 2).all()
    assert np.allclose(seg.centers_[:, 0], [10, 20, 0], atol=1)
    assert (seg.own_centers_[seg.order_] == seg.centers_).all()  # _keep gets the same order
    assert seg.labels_.dtype == np.int32 and (seg.predict(X) == seg.labels_).all()
    assert seg.inertia_ == pytest.approx(((X - seg.centers_[seg.labels_]) ** 2).sum(), rel=1e-5)
    assert seg.tss_ == pytest.approx(((X - X.mean()) ** 2).sum(), rel=1e-5)
    assert seg.n_features_in_ == 1


def test_sweep_result_does_not_depend_on_the_methods_own_numbering():
    X, _ = _line(1)
    a = LineSegmenter().fit(X)
    b = LineSegmenter(reverse=True).fit(X)
    assert not (a.own_centers_ == b.own_centers_).all()  # the methods numbered differently
    assert (a.labels_ == b.labels_).all() and (a.centers_ == b.centers_).all()
    own = ["spacing"]  # the method's own score, computed from its own numbering
    # equal up to rounding: Davies–Bouldin sums over segments in label order
    pd.testing.assert_frame_equal(
        a.selection_.drop(columns=own), b.selection_.drop(columns=own), rtol=1e-6
    )


def test_fixed_k_fits_only_that_k():
    X, _ = _line()
    seg = LineSegmenter(k=3).fit(X)
    assert seg.fitted_ks_ == [3] and seg.k_ == 3
    assert "fixed by the user" in seg.decision_.reason


def test_distinct_profiles_bound_the_sweep():
    X = np.repeat(np.array([[0.0], [10.0], [20.0]], dtype=np.float32), 5, axis=0)
    seg = LineSegmenter().fit(X)
    assert seg.fitted_ks_ == [2, 3]
    assert (
        "narrowed" in seg.decision_.reason and "3 distinct feature profile" in seg.decision_.reason
    )
    with pytest.raises(InputError, match="too few to segment"):
        LineSegmenter().fit(X[:3])


def test_a_method_can_decide_k_its_own_way():
    X, _ = _line()
    seg = TwoSegmenter().fit(X)
    assert seg.k_ == 2 and seg.decision_.reason == "always two"
    assert seg.selection_.loc[seg.selection_["chosen"], "k"].tolist() == [2]
    sizes = np.bincount(seg.labels_)
    assert len(sizes) == 2 and sizes[0] >= sizes[1]


def test_candidate_scores_do_not_depend_on_label_names():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    tss = metrics.total_sum_of_squares(X)
    labels = rng.integers(0, 4, 300).astype(np.int32)
    labels[:10] = -1  # noise is excluded and counted either way
    perm = np.array([2, 0, 3, 1], dtype=np.int32)
    renamed = np.where(labels >= 0, perm[np.maximum(labels, 0)], -1).astype(np.int32)
    a, b = candidate_row(X, labels, 4, tss), candidate_row(X, renamed, 4, tss)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-6), key
    sil = [
        Candidates([dict(a)], [labels[10:]]).table(X[10:], 20, 0),
        Candidates([dict(b)], [renamed[10:]]).table(X[10:], 20, 0),
    ]
    assert sil[0]["silhouette"].iloc[0] == pytest.approx(sil[1]["silhouette"].iloc[0])


class Refuses(LineSegmenter):
    def fit(self, X, y=None, *, progress=None):
        raise InputError("this base never fits")


def test_ensemble_fits_copies_of_the_bases_it_is_given():
    # unevenly spaced, so that LineSegmenter's splits at k = 2 and 4 do not cut a group
    X, y = _line(2, at=(0, 10, 30))
    line, km = LineSegmenter(), KMeansSegmenter(n_init=1, bootstrap=10)
    before = (line.get_params(), km.get_params())
    seg = EnsembleSegmenter(
        base_segmenters=[("line", line), ("km", km), ("never", Refuses())],
        pilot=LineSegmenter(),
        resamples=2,
        sample=300,
    ).fit(X)
    assert seg.base_count_ == 2 * 3 * 2  # two bases that fit x k in {2, 3, 4} x 2 resamples
    assert "(line, km, never × k = 2, 3, 4 × 2 resamples)" in seg.decision_.reason
    assert seg.k_ == 3 and ari(y, seg.labels_) == 1.0
    assert np.bincount(seg.labels_).tolist() == [200, 100, 50]
    assert seg.agreement_.shape == (len(X),) and seg.segment_stability_.shape == (3,)
    # the given segmenters are templates: copied, never fitted or changed
    assert not hasattr(line, "labels_") and not hasattr(km, "labels_")
    assert (line.get_params(), km.get_params()) == before


def test_ensemble_takes_k0_from_its_pilot():
    X, _ = _line(2)
    seg = EnsembleSegmenter(
        base_segmenters=[("line", LineSegmenter())], pilot=TwoSegmenter(), resamples=1, sample=300
    ).fit(X)
    assert "k = 2, 3 ×" in seg.decision_.reason  # k0 = 2: the candidates are 2 and 3


def test_ensemble_refuses_bad_bases():
    X, _ = _line()
    with pytest.raises(InputError, match="cannot contain"):
        inner = EnsembleSegmenter(base_segmenters=[("line", LineSegmenter())])
        EnsembleSegmenter(base_segmenters=[("inner", inner)]).fit(X)
    with pytest.raises(ValueError, match="base_segmenters"):
        EnsembleSegmenter(base_segmenters=[]).fit(X)
    with pytest.raises(ValueError, match="base_segmenters"):
        EnsembleSegmenter(base_segmenters=[LineSegmenter()]).fit(X)


def _cluster_imports() -> dict[str, set[str]]:
    """For each module of ``segmint.cluster``, the modules of the package it imports
    (anywhere in the file, function bodies included)."""
    folder = Path(segmint.cluster.__file__).parent
    names = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    edges: dict[str, set[str]] = {}
    for name in names:
        found: set[str] = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 1:  # from .x import y / from . import x
                    found |= {mod.split(".")[0]} if mod else {a.name for a in node.names}
                elif mod.startswith("segmint.cluster."):
                    found.add(mod.split(".")[2])
                elif mod == "segmint.cluster":
                    found |= {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {
                    a.name.split(".")[2]
                    for a in node.names
                    if a.name.startswith("segmint.cluster.")
                }
        edges[name] = found & names
    return edges


def test_cluster_imports_point_one_way():
    """The ensemble is given its bases (it does not import the registry), the base knows no
    algorithm, and no module of ``cluster`` imports itself back through another."""
    edges = _cluster_imports()
    assert {"ensemble", "kmeans", "registry"} <= set(edges)
    assert "registry" not in edges["ensemble"] and "kmeans" not in edges["ensemble"]
    assert edges["base"] == set()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1  # on the current path
        for nxt in sorted(edges[node]):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
