"""``create_app(workspace)``: the one FastAPI application that serves a workspace, used by
``segmint serve``, the tests and anyone embedding segmint in their own ASGI server.

Every ``/v1`` route but ``/v1/health`` needs an API key (``api.auth``); errors share one JSON
shape (``api.errors``); bodies are size-limited while they arrive (``api.limits``). The OpenAPI
schema at ``/openapi.json`` (browsable at ``/docs``) is generated from the pydantic models the
store and results use, not written by hand.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from segmint import __version__
from segmint.api.auth import KEY_FILE, Keys, load_or_create_key
from segmint.api.config import ServerSettings
from segmint.api.deps import require_key
from segmint.api.errors import install_handlers
from segmint.api.headers import SecurityHeaders
from segmint.api.limits import BodyLimit
from segmint.api.routes import jobs, results, runs, scoring
from segmint.store.modelcache import ModelCache
from segmint.store.workspace import Workspace

__all__ = ["create_app", "from_env", "resolve_keys"]

DESCRIPTION = """Customer segments over HTTP: browse and export a workspace's runs, score
customers in real time, start and cancel segmentations.

Authenticate with `Authorization: Bearer KEY` or `X-API-Key: KEY`. Errors are always
`{"error": {"code", "message", "details"}}` with a stable `code`."""


def resolve_keys(ws: Workspace, settings: ServerSettings) -> Keys:
    """The configured keys, else the workspace's own (created, mode 0600, on first use)."""
    if settings.api_keys:
        return Keys.of(settings.api_keys, "SEGMINT_API_KEY")
    key, created = load_or_create_key(ws.root)
    return Keys.of([key], str(ws.root / KEY_FILE), created=key if created else None)


def create_app(
    workspace: Workspace | str | os.PathLike[str] | None = None,
    *,
    settings: ServerSettings | None = None,
) -> FastAPI:
    """The API over ``workspace`` (a ``Workspace``, a folder, or ``$SEGMINT_WORKSPACE``)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    settings = settings if settings is not None else ServerSettings.from_env()
    keys = resolve_keys(ws, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ws.close()

    app = FastAPI(
        title="segmint",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.workspace = ws
    app.state.server = settings
    app.state.keys = keys
    # models are loaded once per run and kept (bounded LRU); gc frozen after the first load
    app.state.models = ModelCache(settings.model_cache_size, freeze_gc=True)
    install_handlers(app)
    app.add_middleware(
        BodyLimit, body_limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes
    )
    app.add_middleware(SecurityHeaders)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    guarded = [Depends(require_key)]
    app.include_router(runs.public, prefix="/v1")
    app.include_router(runs.router, prefix="/v1", dependencies=guarded)
    app.include_router(results.router, prefix="/v1", dependencies=guarded)
    app.include_router(jobs.router, prefix="/v1", dependencies=guarded)
    app.include_router(scoring.router, prefix="/v1", dependencies=guarded)
    return app


def from_env() -> FastAPI:
    """The app for ``$SEGMINT_WORKSPACE`` with settings from the environment: the factory
    ``segmint serve`` hands uvicorn, so every worker process builds the same app."""
    root = os.environ.get("SEGMINT_WORKSPACE")
    return create_app(Path(root) if root else None)
