"""Health and the run registry: list, show and delete runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from segmint import __version__
from segmint.api.deps import RunRef, WorkspaceDep
from segmint.api.errors import error_responses
from segmint.api.schemas import Deleted, Health, RunDetail, RunPage
from segmint.exceptions import SegmintError
from segmint.pipeline.jobs import SEGMENTATIONS
from segmint.store.loading import read_manifest

__all__ = ["public", "router"]

public = APIRouter(tags=["health"])
router = APIRouter(tags=["runs"], responses=error_responses(401, 503))


@public.get("/health", response_model=Health, summary="Liveness, version and registry state")
def health(ws: WorkspaceDep) -> Health:
    try:
        ws.registry.count()
        registry = "ok"
    except SegmintError as exc:
        registry = exc.code
    return Health(
        status="ok" if registry == "ok" else "degraded", version=__version__, registry=registry
    )


@router.get("/runs", response_model=RunPage, summary="Runs, newest first")
def list_runs(
    ws: WorkspaceDep,
    kind: Literal["run", "compare", "track", "clv", "effect"] | None = None,
    status: Literal["running", "succeeded", "failed"] | None = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> RunPage:
    registry = ws.registry
    return RunPage(
        runs=registry.list(kind=kind, status=status, tag=tag, limit=limit, offset=offset),
        total=registry.count(kind=kind, status=status, tag=tag),
        limit=limit,
        offset=offset,
    )


@router.get(
    "/runs/{ref}",
    response_model=RunDetail,
    summary="One run: its registry row and, once it succeeded, its manifest",
    responses=error_responses(404, 409, 422),
)
def show_run(ref: RunRef, ws: WorkspaceDep) -> RunDetail:
    record = ws.registry.resolve(ref)
    manifest = None
    if record.kind in SEGMENTATIONS and record.state == "succeeded":
        manifest = read_manifest(record.folder)
    return RunDetail(run=record, manifest=manifest)


@router.delete(
    "/runs/{ref}",
    response_model=Deleted,
    summary="Delete a run: its row, and its folder when it lies in the workspace",
    responses=error_responses(404, 409),
)
def delete_run(ref: RunRef, ws: WorkspaceDep) -> Deleted:
    done = ws.delete_run(ref)
    return Deleted(run=done.record, folder_removed=done.folder_removed, note=done.note)
