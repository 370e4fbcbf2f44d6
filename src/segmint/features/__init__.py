"""Per-customer features: RFM and behaviour from order lines, attributes from customer tables."""

from .build import CustomerFeatures, build_features

__all__ = ["CustomerFeatures", "build_features"]
