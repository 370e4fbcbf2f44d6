"""What routes are given: the workspace, the server's settings, the caller's key check, and a
run reference resolved to its registry row and folder (``RUN`` in a path is an id, a unique id
prefix, a tag, a name or ``latest``, as on the command line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from segmint.api.auth import Keys
from segmint.api.config import ServerSettings
from segmint.api.errors import Refusal
from segmint.pipeline.jobs import existing_folder, find_run
from segmint.store.registry import RunRecord
from segmint.store.workspace import Workspace

__all__ = [
    "Run",
    "RunRef",
    "WorkspaceDep",
    "require_key",
    "segmentation_run",
    "server_settings",
    "workspace",
]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


def workspace(request: Request) -> Workspace:
    return request.app.state.workspace


def server_settings(request: Request) -> ServerSettings:
    return request.app.state.server


WorkspaceDep = Annotated[Workspace, Depends(workspace)]
RunRef = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=200,
        description="A run id, unique id prefix, tag, name, or `latest`.",
    ),
]


def require_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> None:
    """Let the request through only with an accepted key (either header)."""
    keys: Keys = request.app.state.keys
    given = header if header is not None else (bearer.credentials if bearer else None)
    if given is None:
        raise Refusal(
            401,
            "auth.required",
            "This route needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.",
            headers={"WWW-Authenticate": 'Bearer realm="segmint"'},
        )
    if not keys.accepts(given):
        raise Refusal(
            401,
            "auth.invalid",
            "The API key is not valid for this server.",
            headers={"WWW-Authenticate": 'Bearer realm="segmint", error="invalid_token"'},
        )


@dataclass(frozen=True)
class Run:
    """A finished segmentation run: its row and its folder (which exists)."""

    record: RunRecord
    folder: Path


def segmentation_run(ref: RunRef, ws: WorkspaceDep) -> Run:
    """The finished ``run`` or ``compare`` run ``ref`` names: 404 when there is none, 409 when
    it is still running, failed, or of another kind."""
    record = find_run(ws, ref)
    return Run(record, existing_folder(record))


RunDep = Annotated[Run, Depends(segmentation_run)]
