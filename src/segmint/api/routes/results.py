"""A finished segmentation run's results: segments, customers, exports, the report, tables."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, StreamingResponse

from segmint.api.deps import RunDep
from segmint.api.errors import error_responses
from segmint.api.schemas import Customer, CustomerPage, SegmentList, Table, segment_out
from segmint.exceptions import ArtifactError
from segmint.store import runview

__all__ = ["router"]

router = APIRouter(tags=["results"], responses=error_responses(401, 404, 409, 422, 503))

SegmentParam = Annotated[
    str | None,
    Query(max_length=200, description="A segment's number or its exact name; omit for all."),
]
TABLES = {
    "k-selection": "k_selection",
    "drivers": "drivers",
    "tests": "tests",
    "posthoc": "posthoc",
    "anomalies": "anomalies",
    "comparison": "comparison",
}


def _segment(run: RunDep, segment: str | None) -> int | None:
    return None if segment is None else runview.one_segment(run.folder, segment)


@router.get("/runs/{ref}/segments", response_model=SegmentList, summary="Segments with personas")
def segments(run: RunDep) -> SegmentList:
    rows = runview.segments(run.folder)
    return SegmentList(run=run.record.id, segments=[segment_out(r) for r in rows])


@router.get(
    "/runs/{ref}/customers",
    response_model=CustomerPage,
    summary="Customers with their segment and scores, a page at a time",
)
def customers(
    run: RunDep,
    segment: SegmentParam = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> CustomerPage:
    number = _segment(run, segment)
    total, rows = runview.customers_page(run.folder, segment=number, limit=limit, offset=offset)
    return CustomerPage(
        run=run.record.id,
        segment=number,
        total=total,
        limit=limit,
        offset=offset,
        customers=[Customer(**r) for r in rows],
    )


@router.get(
    "/runs/{ref}/customers/{customer_id:path}",
    response_model=Customer,
    summary="One customer: segment, confidence, churn probability, CLV, features",
)
def customer(run: RunDep, customer_id: str) -> Customer:
    return Customer(**runview.customer(run.folder, customer_id))


@router.get(
    "/runs/{ref}/export",
    summary="A segment's customer list as CSV (spreadsheet-safe) or Parquet, streamed",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
            "description": "The customers, one row each, with their scores and features.",
        }
    },
)
def export(
    run: RunDep,
    segment: SegmentParam = None,
    format: Literal["csv", "parquet"] = "csv",
) -> StreamingResponse:
    number = _segment(run, segment)
    label = "all" if number is None else f"segment-{number}"
    name = f"{run.record.id}-{label}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        body = runview.export_csv(run.folder, number)
        return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)
    body = runview.export_parquet(run.folder, number)
    return StreamingResponse(body, media_type="application/vnd.apache.parquet", headers=headers)


@router.get(
    "/runs/{ref}/report",
    summary="The run's HTML report",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The report."}},
)
def report(run: RunDep) -> FileResponse:
    path = run.folder / "report.html"
    if not path.is_file():
        raise ArtifactError(f"run {run.record.id} has no report.html.", code="artifact.missing")
    return FileResponse(path, media_type="text/html; charset=utf-8")


def _table_route(slug: str, name: str) -> None:
    def read(run: RunDep) -> Table:
        rows = runview.table_records(run.folder, name)
        if rows is None:
            raise ArtifactError(
                f"run {run.record.id} has no {slug} table (the run's method or settings did "
                "not produce it).",
                code="artifact.missing",
            )
        return Table(run=run.record.id, table=slug, rows=rows)

    read.__name__ = f"table_{name}"
    router.get(f"/runs/{{ref}}/{slug}", response_model=Table, summary=f"The {slug} table")(read)


for _slug, _name in TABLES.items():
    _table_route(_slug, _name)
