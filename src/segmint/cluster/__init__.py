"""Clustering algorithms behind one registry."""

from .density import DensitySegmenter
from .ensemble import EnsembleSegmenter
from .hierarchical import HierarchicalSegmenter
from .kmeans import KMeansSegmenter
from .mixture import MixtureSegmenter
from .registry import ALGORITHMS, make_segmenter

__all__ = [
    "ALGORITHMS",
    "DensitySegmenter",
    "EnsembleSegmenter",
    "HierarchicalSegmenter",
    "KMeansSegmenter",
    "MixtureSegmenter",
    "make_segmenter",
]
