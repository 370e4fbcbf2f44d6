"""segmint's REST API (FastAPI): ``create_app(workspace)``; ``segmint serve`` runs it."""

from segmint.api.app import create_app

__all__ = ["create_app"]
