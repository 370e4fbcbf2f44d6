"""Name → segmenter factory, so config, CLI and API name algorithms the same way.

Every segmenter follows ``cluster.base``: ``fit(X, progress=...)`` then ``labels_``, ``k_``,
``centers_``, ``selection_``, ``decision_``, ``assigner()`` and ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Clustering
from .density import DensitySegmenter
from .ensemble import EnsembleSegmenter
from .hierarchical import HierarchicalSegmenter
from .kmeans import KMeansSegmenter
from .mixture import MixtureSegmenter
from .prototypes import KPrototypesSegmenter


def _kmeans(variant: str) -> Callable[[Clustering, int], KMeansSegmenter]:
    def make(c: Clustering, seed: int) -> KMeansSegmenter:
        return KMeansSegmenter(
            variant=variant,
            k=c.k,
            k_min=c.k_min,
            k_max=c.k_max,
            n_init=c.n_init,
            sweep_sample=c.sweep_sample,
            silhouette_sample=c.silhouette_sample,
            bootstrap=c.bootstrap,
            min_segment_share=c.min_segment_share,
            random_state=seed,
        )

    return make


def _hierarchical(linkage: str) -> Callable[[Clustering, int], HierarchicalSegmenter]:
    def make(c: Clustering, seed: int) -> HierarchicalSegmenter:
        return HierarchicalSegmenter(
            linkage=linkage,
            k=c.k,
            k_min=c.k_min,
            k_max=c.k_max,
            max_fit_sample=c.max_fit_sample,
            silhouette_sample=c.silhouette_sample,
            bootstrap=c.bootstrap,
            min_segment_share=c.min_segment_share,
            random_state=seed,
        )

    return make


def _mixture(c: Clustering, seed: int) -> MixtureSegmenter:
    return MixtureSegmenter(
        covariance=c.covariance,
        k=c.k,
        k_min=c.k_min,
        k_max=c.k_max,
        sweep_sample=min(c.sweep_sample, 50_000),
        silhouette_sample=c.silhouette_sample,
        bootstrap=c.bootstrap,
        low_confidence=c.low_confidence,
        random_state=seed,
    )


def _density(method: str) -> Callable[[Clustering, int], DensitySegmenter]:
    def make(c: Clustering, seed: int) -> DensitySegmenter:
        return DensitySegmenter(
            method=method,
            eps=c.eps,
            min_samples=c.min_samples,
            min_cluster_size=c.min_cluster_size,
            max_fit_sample=c.max_fit_sample,
            silhouette_sample=c.silhouette_sample,
            bootstrap=c.bootstrap,
            random_state=seed,
        )

    return make


def _ensemble(c: Clustering, seed: int) -> EnsembleSegmenter:
    return EnsembleSegmenter(
        k=c.k,
        k_min=c.k_min,
        k_max=c.k_max,
        min_segment_share=c.min_segment_share,
        random_state=seed,
    )


def _kprototypes(c: Clustering, seed: int) -> KPrototypesSegmenter:
    return KPrototypesSegmenter(
        k=c.k,
        k_min=c.k_min,
        k_max=c.k_max,
        n_init=min(c.n_init, 2),
        silhouette_sample=c.silhouette_sample,
        bootstrap=c.bootstrap,
        min_segment_share=c.min_segment_share,
        random_state=seed,
    )


ALGORITHMS: dict[str, Callable[[Clustering, int], Any]] = {
    "kmeans": _kmeans("kmeans"),
    "minibatch": _kmeans("minibatch"),
    "bisecting": _kmeans("bisecting"),
    "ward": _hierarchical("ward"),
    "average": _hierarchical("average"),
    "complete": _hierarchical("complete"),
    "gmm": _mixture,
    "dbscan": _density("dbscan"),
    "hdbscan": _density("hdbscan"),
    "ensemble": _ensemble,
    "kprototypes": _kprototypes,
}


def make_segmenter(
    c: Clustering, seed: int, *, categorical_groups: list[list[int]] | None = None
) -> Any:
    """A new segmenter for ``c.algorithm``; ``categorical_groups`` (the one-hot blocks of
    the preprocessed matrix) reach the methods that read categories (K-Prototypes)."""
    seg = ALGORITHMS[c.algorithm](c, seed)
    if "categorical_groups" in seg.get_params():
        seg.set_params(categorical_groups=categorical_groups)
    return seg


def refit_factory(c: Clustering, seed: int, fitted: Any) -> Callable[[], Any]:
    """Unfitted copies of ``fitted``'s algorithm with its outcome fixed — k for the k-based
    methods, eps/min_samples for density ones — each with a fresh seed (for stability)."""
    if c.algorithm in {"dbscan", "hdbscan"}:
        update: dict[str, Any] = {"min_samples": fitted.min_samples_}
        if c.algorithm == "dbscan":
            update["eps"] = fitted.eps_
    else:
        update = {"k": fitted.k_, "n_init": min(c.n_init, 2)}
    fixed = c.model_copy(update=update)
    counter = iter(range(1, 1_000_000))
    groups = getattr(fitted, "categorical_groups", None)
    return lambda: make_segmenter(fixed, seed + next(counter), categorical_groups=groups)
