"""Clustering algorithms behind one registry.

``base`` holds what every segmenter shares, ``sweep`` the k sweep of the k-choosing methods
(k-means family, hierarchical, mixture, K-Prototypes), ``candidates`` the scores of each
candidate k; ``density`` and ``ensemble`` fit without a sweep; ``registry`` names them all.
"""

from segmint.cluster.base import Assigner, Segmenter
from segmint.cluster.density import DensitySegmenter
from segmint.cluster.ensemble import EnsembleSegmenter
from segmint.cluster.hierarchical import HierarchicalSegmenter
from segmint.cluster.kmeans import KMeansSegmenter
from segmint.cluster.mixture import MixtureSegmenter
from segmint.cluster.prototypes import KPrototypesSegmenter
from segmint.cluster.registry import ALGORITHMS, make_segmenter
from segmint.cluster.sweep import KSweepSegmenter

__all__ = [
    "ALGORITHMS",
    "Assigner",
    "DensitySegmenter",
    "EnsembleSegmenter",
    "HierarchicalSegmenter",
    "KMeansSegmenter",
    "KPrototypesSegmenter",
    "KSweepSegmenter",
    "MixtureSegmenter",
    "Segmenter",
    "make_segmenter",
]
