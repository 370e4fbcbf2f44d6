"""Per-customer features: RFM and behaviour from order lines, attributes from customer tables."""

from segmint.features.build import CustomerFeatures, build_features

__all__ = ["CustomerFeatures", "build_features"]
