"""Name → segmenter factory, so config, CLI and API name algorithms the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Clustering
from .kmeans import KMeansSegmenter


def _kmeans(c: Clustering, seed: int) -> KMeansSegmenter:
    return KMeansSegmenter(
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


ALGORITHMS: dict[str, Callable[[Clustering, int], Any]] = {"kmeans": _kmeans}


def make_segmenter(c: Clustering, seed: int) -> Any:
    return ALGORITHMS[c.algorithm](c, seed)
