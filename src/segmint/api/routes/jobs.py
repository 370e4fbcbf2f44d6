"""Starting and cancelling segmentation runs: ``POST /v1/runs`` and
``POST /v1/runs/{RUN}/cancel``.

A thin edge over ``pipeline.launch`` (which owns the worker processes, the registry rows and
the bound on concurrent runs; see its docstring). This module reads the request itself,
because one route takes two kinds of body:

- ``multipart/form-data``: one or more ``files`` parts (streamed to disk by ``api.inputs``),
  a ``settings`` part holding JSON, optional ``name`` and repeated ``tags``;
- ``application/json``: ``{"paths": [...], "settings": {...}, "name": ..., "tags": [...]}``,
  the paths inside the server's data directory.

Both are documented in OpenAPI from the pydantic models below (``openapi_extra``), whose
``settings`` is ``segmint.config.Settings`` without ``inputs`` and ``out``, which the server
decides. A run slot is taken before an upload is read, so a busy server answers 429 (with
``Retry-After``) without receiving the files; the run is then started in a worker and the
answer is 202 with the registry row (``running``) and ``Location: /v1/runs/{id}``.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.concurrency import run_in_threadpool

from segmint.api.config import ServerSettings
from segmint.api.deps import RunRef, server_settings
from segmint.api.errors import Refusal, error_responses
from segmint.api.inputs import MAX_FILES, receive_uploads, resolve_data_paths
from segmint.config import Settings
from segmint.exceptions import ConfigError
from segmint.pipeline.launch import Launcher, Reservation
from segmint.store.registry import RunRecord

__all__ = ["PathRun", "RunAccepted", "RunSettings", "UploadRun", "router"]

router = APIRouter(tags=["jobs"], responses=error_responses(401, 503))

SERVER_DECIDES = ("inputs", "out")
RETRY_AFTER_SECONDS = 30

RunSettings = create_model(  # type: ignore[call-overload]
    "RunSettings",
    __config__=ConfigDict(extra="forbid"),
    __doc__=(
        "The settings of a run (`segmint.config.Settings`, as in a config file) without "
        "`inputs` and `out`: the server decides what a run reads and where it is written."
    ),
    **{
        name: (info.annotation, info)
        for name, info in Settings.model_fields.items()
        if name not in SERVER_DECIDES
    },
)


# the registry's rules (store.validation.check_name / check_tag), stated in the schema
RunName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$")
]
RunTag = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class _Labels(BaseModel):
    """What both ways of starting a run may say about it besides its inputs."""

    name: RunName | None = Field(default=None, description="A name for the run.")
    tags: list[RunTag] = Field(
        default_factory=list,
        max_length=50,
        description="Tags (in a multipart body: repeat the field); a tag names one run.",
    )


class PathRun(_Labels):
    """Start a run on files in the server's data directory."""

    model_config = ConfigDict(extra="forbid")

    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1,
        max_length=MAX_FILES,
        description="Order lines and/or a customer table: paths inside the server's data "
        "directory (relative to it, or absolute).",
    )
    settings: RunSettings = Field(  # type: ignore[valid-type]
        default_factory=RunSettings, description="How to segment (defaults as the CLI's)."
    )


class UploadRun(_Labels):
    """Start a run on uploaded files (multipart/form-data)."""

    files: list[bytes] = Field(
        min_length=1,
        max_length=MAX_FILES,
        description="Order lines and/or a customer table: .csv .tsv .txt .tab (optionally "
        ".gz), .parquet .pq, .xlsx .xlsm.",
    )
    settings: RunSettings = Field(  # type: ignore[valid-type]
        default_factory=RunSettings, description="How to segment: a JSON document."
    )


class RunAccepted(BaseModel):
    """A run that was started (or asked to stop): its id and its registry row."""

    id: str = Field(description="The run id; poll `GET /v1/runs/{id}` for its state.")
    run: RunRecord


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` substituted in place, so the schema stands
    on its own inside an operation (no references into a ``$defs`` the document lacks)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**walk(defs[ref.removeprefix("#/$defs/")]), **walk(rest)}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": _inline(UploadRun),
                "encoding": {"settings": {"contentType": "application/json"}},
            },
            "application/json": {"schema": _inline(PathRun)},
        },
    }
}

_launcher_lock = threading.Lock()


def launcher(request: Request) -> Launcher:
    """The app's launcher, made on first use (one per server process)."""
    state = request.app.state
    with _launcher_lock:
        found = getattr(state, "launcher", None)
        if found is None:
            server: ServerSettings = state.server
            found = state.launcher = Launcher(state.workspace, max_jobs=server.max_jobs)
    return found


LauncherDep = Annotated[Launcher, Depends(launcher)]
ServerDep = Annotated[ServerSettings, Depends(server_settings)]


def _settings(data: Any, where: str = "settings") -> Settings:
    """The client's settings validated as ``RunSettings`` and then as ``Settings`` (its own
    checks: ISO dates, date formats); every problem in one ``ConfigError`` (422)."""
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: must be a JSON object"])
    taken = [k for k in SERVER_DECIDES if k in data]
    if taken:
        raise ConfigError(
            [f"{where}.{k}: is decided by the server and cannot be set" for k in taken],
            settings=taken,
        )
    try:
        RunSettings.model_validate(data, strict=True)  # as the schema says: false is no seed
    except ValidationError as exc:
        problems, names = [], []
        for err in exc.errors():
            name = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}.{name}: {msg} (got {err.get('input')!r})")
            names.append(name)
        raise ConfigError(problems, settings=names) from None
    try:
        return Settings.build(data)  # its own checks too: ISO dates, date formats
    except ConfigError as exc:
        raise ConfigError([f"{where}.{p}" for p in exc.problems], settings=exc.settings) from None


def _busy(launch: Launcher) -> Refusal:
    return Refusal(
        429,
        "server.busy",
        f"This server is already running {launch.max_jobs} segmentation(s), its limit; try "
        "again when one has finished.",
        details={"max_jobs": launch.max_jobs},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _reserve(launch: Launcher) -> Reservation:
    reservation = await run_in_threadpool(launch.reserve)
    if reservation is None:
        raise _busy(launch)
    return reservation


async def _from_upload(request: Request, launch: Launcher, server: ServerSettings) -> RunRecord:
    with await _reserve(launch) as reservation:
        form = await receive_uploads(request, reservation.folder, limit=server.max_upload_bytes)
        text = form.one("settings")
        try:
            data = json.loads(text) if text and text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(
                [f"settings: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]
            ) from None
        settings = _settings(data)
        return await run_in_threadpool(
            launch.start,
            reservation,
            settings,
            form.files,
            name=form.one("name"),
            tags=form.fields.get("tags", []),
        )


async def _from_paths(request: Request, launch: Launcher, server: ServerSettings) -> RunRecord:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refusal(400, "request.bad", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise Refusal(422, "request.invalid", "The body must be a JSON object.")
    settings = _settings(data.get("settings", {}))
    try:
        body = PathRun.model_validate({**data, "settings": {}})
    except ValidationError as exc:  # paths, name, tags: the one shape of request problems
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None
    paths = resolve_data_paths(server.data_dir, body.paths)
    with await _reserve(launch) as reservation:
        return await run_in_threadpool(
            launch.start, reservation, settings, paths, name=body.name, tags=body.tags
        )


@router.post(
    "/runs",
    status_code=202,
    response_model=RunAccepted,
    summary="Start a segmentation run on uploaded files or on files in the data directory",
    openapi_extra=REQUEST_BODY,
    responses=error_responses(400, 403, 413, 415, 422, 429),
)
async def start_run(
    request: Request, response: Response, launch: LauncherDep, server: ServerDep
) -> RunAccepted:
    """Starts the run in a worker process and answers at once (202) with its row, `running`.
    Poll `GET /v1/runs/{id}` until it is `succeeded` or `failed` (the error says why); cancel
    it with `POST /v1/runs/{id}/cancel`."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        record = await _from_upload(request, launch, server)
    elif ctype == "application/json":
        record = await _from_paths(request, launch, server)
    else:
        raise Refusal(
            415,
            "request.unsupported_media_type",
            "Send the files as multipart/form-data, or paths in the data directory as "
            f"application/json (got {ctype or 'no Content-Type'!r}).",
        )
    response.headers["Location"] = f"/v1/runs/{record.id}"
    return RunAccepted(id=record.id, run=record)


@router.post(
    "/runs/{ref}/cancel",
    status_code=202,
    response_model=RunAccepted,
    summary="Cancel a running run (its worker stops; the run ends failed: cancelled)",
    responses=error_responses(404, 409),
)
def cancel_run(ref: RunRef, launch: LauncherDep) -> RunAccepted:
    """Sends SIGTERM to the run's worker; the run records `failed` with `cancelled` within
    moments. 409 when the run is not running (finished, failed, stale)."""
    record = launch.cancel(ref)
    return RunAccepted(id=record.id, run=record)
