"""Name → segmenter factory, so config, CLI and API name algorithms the same way.

Every segmenter follows ``cluster.base``: ``fit(X, progress=...)`` then ``labels_``, ``k_``,
``centers_``, ``selection_``, ``decision_``, ``assigner()`` and ``predict``. The registry is
the one place that knows every method: it also builds the ensemble's base segmenters and
passes them in (``ensemble_bases``), so the ensemble does not import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segmint.cluster.density import DensitySegmenter
from segmint.cluster.ensemble import EnsembleSegmenter
from segmint.cluster.hierarchical import HierarchicalSegmenter
from segmint.cluster.kmeans import KMeansSegmenter
from segmint.cluster.mixture import MixtureSegmenter
from segmint.cluster.prototypes import KPrototypesSegmenter
from segmint.config import Clustering

# Settings that go to every segmenter accepting a parameter of that name.
_SHARED = (
    "k",
    "k_min",
    "k_max",
    "n_init",
    "sweep_sample",
    "silhouette_sample",
    "bootstrap",
    "min_segment_share",
    "max_fit_sample",
    "covariance",
    "low_confidence",
    "eps",
    "min_samples",
    "min_cluster_size",
)

# The ensemble's base methods, each light: two starts, a small silhouette bootstrap.
ENSEMBLE_METHODS = ("kmeans", "gmm", "ward")
ENSEMBLE_BOOTSTRAP = 20


def _factory(cls: type, **fixed: Any) -> Callable[[Clustering, int], Any]:
    """Build ``cls`` from the settings it accepts; ``fixed`` pins method-specific values
    (a callable value is computed from the settings)."""
    accepted = set(cls._get_param_names())

    def make(c: Clustering, seed: int) -> Any:
        params = {name: getattr(c, name) for name in _SHARED if name in accepted}
        for name, value in fixed.items():
            params[name] = value(c) if callable(value) else value
        return cls(**params, random_state=seed)

    return make


ALGORITHMS: dict[str, Callable[[Clustering, int], Any]] = {
    "kmeans": _factory(KMeansSegmenter, variant="kmeans"),
    "minibatch": _factory(KMeansSegmenter, variant="minibatch"),
    "bisecting": _factory(KMeansSegmenter, variant="bisecting"),
    "ward": _factory(HierarchicalSegmenter, linkage="ward"),
    "average": _factory(HierarchicalSegmenter, linkage="average"),
    "complete": _factory(HierarchicalSegmenter, linkage="complete"),
    # mixtures: two starts and at most 50k customers per candidate k (full covariances)
    "gmm": _factory(MixtureSegmenter, n_init=2, sweep_sample=lambda c: min(c.sweep_sample, 50_000)),
    "dbscan": _factory(DensitySegmenter, method="dbscan"),
    "hdbscan": _factory(DensitySegmenter, method="hdbscan"),
    "ensemble": _factory(
        EnsembleSegmenter,
        base_segmenters=lambda c: ensemble_bases(),
        pilot=lambda c: KMeansSegmenter(bootstrap=ENSEMBLE_BOOTSTRAP),
    ),
    # K-Prototypes loops in Python: its own small fit sample, at most two starts
    "kprototypes": _factory(
        KPrototypesSegmenter,
        max_fit_sample=KPrototypesSegmenter().max_fit_sample,
        n_init=lambda c: min(c.n_init, 2),
    ),
}


def ensemble_bases(methods: tuple[str, ...] = ENSEMBLE_METHODS) -> list[tuple[str, Any]]:
    """The ensemble's base segmenters, unfitted and named; the ensemble sets each copy's k
    and seed."""
    light = Clustering(n_init=2, stability_runs=0, bootstrap=ENSEMBLE_BOOTSTRAP)
    bad = [m for m in methods if m not in ALGORITHMS or m == "ensemble"]
    if bad:
        raise ValueError(f"ensemble base methods must be registered and not 'ensemble': {bad}")
    return [(m, ALGORITHMS[m](light, 0)) for m in methods]


def make_segmenter(
    c: Clustering, seed: int, *, categorical_groups: list[list[int]] | None = None
) -> Any:
    """A new segmenter for ``c.algorithm``; ``categorical_groups`` (the one-hot blocks of
    the preprocessed matrix) reach the methods that read categories (K-Prototypes)."""
    seg = ALGORITHMS[c.algorithm](c, seed)
    if "categorical_groups" in seg.get_params(deep=False):
        seg.set_params(categorical_groups=categorical_groups)
    return seg


def refit_settings(c: Clustering, **update: Any) -> Clustering:
    """Settings for a stability refit: only its labels are used, so the silhouette every
    segmenter reports for its candidate k runs on a token sample (at 2,400 rows it was 70%
    of a refit's time)."""
    return c.model_copy(update={"silhouette_sample": 100, "bootstrap": 10, **update})


def refit_factory(c: Clustering, seed: int, fitted: Any) -> Callable[[], Any]:
    """Unfitted copies of ``fitted``'s algorithm with its outcome fixed — k for the k-based
    methods, eps/min_samples for density ones — each with a fresh seed (for stability)."""
    if c.algorithm in {"dbscan", "hdbscan"}:
        update: dict[str, Any] = {"min_samples": fitted.min_samples_}
        if c.algorithm == "dbscan":
            update["eps"] = fitted.eps_
    else:
        update = {"k": fitted.k_, "n_init": min(c.n_init, 2)}
    fixed = refit_settings(c, **update)
    counter = iter(range(1, 1_000_000))
    groups = getattr(fitted, "categorical_groups", None)
    return lambda: make_segmenter(fixed, seed + next(counter), categorical_groups=groups)
