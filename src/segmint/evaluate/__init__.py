"""Cluster quality metrics and the choice of the number of segments."""
