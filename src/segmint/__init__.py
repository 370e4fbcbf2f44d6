"""segmint: customer segmentation."""
