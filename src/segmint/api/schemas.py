"""Response bodies of the read routes. Runs and manifests are the store's and results' own
pydantic models (``RunRecord``, ``RunManifest``), so OpenAPI describes exactly what the
registry and ``manifest.json`` hold; the models here only wrap them (pages, details) or shape
a table row for callers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from segmint.results import RunManifest
from segmint.store.registry import RunRecord

__all__ = [
    "Customer",
    "CustomerPage",
    "Deleted",
    "Health",
    "RunDetail",
    "RunPage",
    "Segment",
    "SegmentList",
    "Strategy",
    "Table",
]

Scalar = float | int | str | bool | None


class Health(BaseModel):
    status: str = Field(description="`ok`, or `degraded` when the registry cannot be reached.")
    version: str
    registry: str = Field(description="`ok` or the reason the registry cannot be used.")


class Page(BaseModel):
    total: int = Field(description="How many items match, over all pages.")
    limit: int
    offset: int


class RunPage(Page):
    runs: list[RunRecord]


class RunDetail(BaseModel):
    run: RunRecord = Field(description="The registry row: state, timing, inputs, tags.")
    manifest: RunManifest | None = Field(
        description="The run's manifest.json; null until a segmentation run has succeeded."
    )


class Deleted(BaseModel):
    run: RunRecord
    folder_removed: bool
    note: str | None = None


class Strategy(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: str | None = None
    channel: str | None = None
    offer: str | None = None
    discount: str | None = None
    message: str | None = None
    kpi: str | None = None


class Segment(BaseModel):
    segment: int
    segment_name: str
    archetype: str | None = None
    description: str | None = None
    distinguishing: str | None = None
    top_drivers: str | None = None
    size: int
    share_customers: float | None = None
    revenue: float | None = None
    share_revenue: float | None = None
    clv_total: float | None = None
    value_at_risk: float | None = None
    expected_churn_rate: float | None = None
    revenue_at_stake: float | None = None
    stability_jaccard: float | None = None
    unstable: bool | None = None
    strategy: Strategy
    profile: dict[str, Scalar] = Field(
        description="The segment's means, medians and standardised differences per feature."
    )


class SegmentList(BaseModel):
    run: str = Field(description="The run id.")
    segments: list[Segment]


class Customer(BaseModel):
    customer_id: str
    segment: int
    segment_name: str
    confidence: float | None = None
    distance: float | None = None
    low_confidence: bool | None = None
    anomaly_score: float | None = None
    is_anomaly: bool | None = None
    churn_probability: float | None = None
    clv: float | None = None
    features: dict[str, Scalar]


class CustomerPage(Page):
    run: str
    segment: int | None
    customers: list[Customer]


class Table(BaseModel):
    run: str
    table: str
    rows: list[dict[str, Any]]


def segment_out(row: dict[str, Any]) -> Segment:
    """A segments-table row as a ``Segment``: the named fields, the strategy, the rest as the
    profile."""
    named = set(Segment.model_fields)
    strategy_keys = set(Strategy.model_fields)
    return Segment(
        **{k: v for k, v in row.items() if k in named and k not in ("strategy", "profile")},
        strategy=Strategy(**{k: row.get(k) for k in strategy_keys if k in row}),
        profile={k: v for k, v in row.items() if k not in named and k not in strategy_keys},
    )
