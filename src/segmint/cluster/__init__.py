"""Clustering algorithms behind one registry."""

from .density import DensitySegmenter
from .ensemble import EnsembleSegmenter
from .hierarchical import HierarchicalSegmenter
from .kmeans import KMeansSegmenter
from .mixture import MixtureSegmenter
from .prototypes import KPrototypesSegmenter
from .registry import ALGORITHMS, make_segmenter

__all__ = [
    "ALGORITHMS",
    "DensitySegmenter",
    "EnsembleSegmenter",
    "HierarchicalSegmenter",
    "KMeansSegmenter",
    "KPrototypesSegmenter",
    "MixtureSegmenter",
    "make_segmenter",
]
