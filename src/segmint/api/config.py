"""The server's own settings: who may call it, how much a request may carry, where runs may
read files from. Separate from ``segmint.config.Settings`` (how a segmentation runs): these
describe the process that serves the workspace, not a run.

Read from the environment by ``ServerSettings.from_env`` so that every uvicorn worker process
(``segmint serve --workers N`` starts them by import string) builds the same app:

- ``SEGMINT_API_KEY``: one or several keys, comma-separated. Unset: the workspace's generated
  key (``api.auth``).
- ``SEGMINT_DATA_DIR``: the folder ``POST /v1/runs`` may read input paths from (off when unset).
- ``SEGMINT_MAX_BODY_BYTES`` (default 16 MiB), ``SEGMINT_MAX_UPLOAD_BYTES`` (default 2 GiB).
- ``SEGMINT_CORS_ORIGINS``: comma-separated origins allowed by CORS (off when unset).
- ``SEGMINT_MODEL_CACHE``: how many runs' models stay loaded (default 8).
- ``SEGMINT_MAX_JOBS``: how many runs may execute at once in worker processes (default 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from segmint.exceptions import ConfigError

__all__ = ["ServerSettings"]

MiB = 1024 * 1024

_ENV = {
    "api_keys": "SEGMINT_API_KEY",
    "data_dir": "SEGMINT_DATA_DIR",
    "max_body_bytes": "SEGMINT_MAX_BODY_BYTES",
    "max_upload_bytes": "SEGMINT_MAX_UPLOAD_BYTES",
    "cors_origins": "SEGMINT_CORS_ORIGINS",
    "model_cache_size": "SEGMINT_MODEL_CACHE",
    "max_jobs": "SEGMINT_MAX_JOBS",
}
_LISTS = ("api_keys", "cors_origins")


class ServerSettings(BaseModel):
    """How ``create_app`` serves a workspace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_keys: tuple[str, ...] = Field(
        default=(), description="Accepted API keys; empty: the workspace's generated key."
    )
    data_dir: Path | None = Field(
        default=None, description="Folder new runs may read input paths from; None: off."
    )
    max_body_bytes: int = Field(default=16 * MiB, ge=1024, description="Largest JSON body.")
    max_upload_bytes: int = Field(default=2048 * MiB, ge=1024, description="Largest upload.")
    cors_origins: tuple[str, ...] = Field(default=(), description="CORS origins; empty: off.")
    model_cache_size: int = Field(default=8, ge=1, le=1024, description="Models kept loaded.")
    max_jobs: int = Field(default=2, ge=1, le=64, description="Runs executing at once.")

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for key in keys:
            if len(key) < 16:
                raise ValueError("an API key must be at least 16 characters long")
            if not key.isascii() or not key.isprintable() or " " in key:
                raise ValueError("an API key must be printable ASCII without spaces")
        return keys

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: object) -> ServerSettings:
        """Settings from the environment (see the module docstring); ``given`` wins."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field, var in _ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            values[field] = (
                tuple(p.strip() for p in raw.split(",") if p.strip()) if field in _LISTS else raw
            )
        values.update({k: v for k, v in given.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = {field: var for field, var in _ENV.items()}
            problems = [
                f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else '(server)'}: "
                f"{e['msg']}"
                for e in exc.errors()
            ]
            settings = tuple(str(e["loc"][0]) for e in exc.errors() if e["loc"])
            raise ConfigError(problems, settings=settings) from None
