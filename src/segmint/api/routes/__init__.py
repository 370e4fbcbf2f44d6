"""The API's routers, one module per area; ``segmint.api.app`` mounts them under ``/v1``."""
