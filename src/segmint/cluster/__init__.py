"""Clustering algorithms behind one registry."""

from .kmeans import KMeansSegmenter
from .registry import ALGORITHMS, make_segmenter

__all__ = ["ALGORITHMS", "KMeansSegmenter", "make_segmenter"]
