"""Real-time scoring: ``POST /v1/runs/{RUN}/score``.

A thin edge over ``pipeline.scoring``: the body is either customers (their feature values,
or a customer table's attributes for a run trained on one) or order lines; the answer is each
customer's segment, name, confidence, probabilities where the method has them and churn
probability where the run has a churn model — what ``segmint predict`` gives on the same
data. The run's model comes from the server's ``ModelCache`` (loaded and verified once per
run, ``app.state.models``).

The body is read as bytes in the event loop and parsed and validated by pydantic in the
worker thread that scores it (this is a sync endpoint, which also resolves the run: one
thread hop per request), so neither a large body nor the scoring ever blocks the loop.
OpenAPI documents the body from ``ScoreRequest`` all the same, and the answer, built as
plain values and serialised by pydantic-core, from ``ScoreResponse``.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from typing import Annotated, Any, Literal

import pydantic_core
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    ValidationError,
)

from segmint.api.config import ServerSettings
from segmint.api.deps import Run, RunRef, segmentation_run, workspace
from segmint.api.errors import error_responses
from segmint.api.routes.jobs import _inline
from segmint.pipeline.scoring import Scored, score_customers, score_orders
from segmint.results import LocalDateTime
from segmint.store.modelcache import ModelCache

__all__ = [
    "MAX_CUSTOMERS",
    "MAX_ORDER_LINES",
    "CustomerRecord",
    "CustomerScore",
    "OrderLine",
    "ScoreCustomers",
    "ScoreOrders",
    "ScoreRequest",
    "ScoreResponse",
    "models",
    "router",
]

MAX_CUSTOMERS = 10_000
MAX_ORDER_LINES = 100_000

router = APIRouter(tags=["scoring"])

Id = Annotated[str, Field(min_length=1, max_length=200)] | int
Text = Annotated[str, Field(max_length=500)] | int | None


class CustomerRecord(BaseModel):
    """One customer: ``customer_id`` and the values the run's model needs.

    For a run trained on order lines (or on order lines and a customer table), every feature
    of the model (the run's `features.numeric` and `features.categorical`, and the churn
    model's inputs): numbers for numeric features, text for categorical ones, `null` where
    unknown (imputed as in training). For a run trained on a customer table alone, the
    table's columns, cleaned and typed as `segmint predict` does (`input: "features"` sends
    the model's features instead)."""

    model_config = ConfigDict(extra="allow")

    customer_id: Id = Field(description="The customer's id (a string, or an integer id).")


class OrderLine(BaseModel):
    """One order line, in segmint's canonical column names."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Id | None = Field(description="Whose order (a line without one is rejected).")
    order_id: Id | None = Field(
        description="The order; ids starting with the run's cancellation prefix are returns."
    )
    ts: _dt.datetime | None = Field(
        description="When (ISO 8601; an offset is converted to UTC, a naive time is taken as is)."
    )
    quantity: float | None = Field(description="Items; negative for a return.")
    unit_price: float | None = Field(description="Price of one item.")
    product_id: Text = Field(default=None, description="Product (distinct products, shares).")
    category: Text = Field(default=None, description="Product category (category shares).")
    channel: Text = Field(default=None, description="Sales channel (kept, not yet a feature).")
    country: Text = Field(default=None, description="Country (kept, not yet a feature).")


class ScoreCustomers(BaseModel):
    """Score customers from their values."""

    model_config = ConfigDict(extra="forbid")

    customers: list[CustomerRecord] = Field(
        min_length=1,
        max_length=MAX_CUSTOMERS,
        description=f"Customer records (at most {MAX_CUSTOMERS:,}).",
    )
    input: Literal["auto", "features", "attributes"] = Field(
        default="auto",
        description=(
            "`features` (the model's feature values) or `attributes` (a customer table's "
            "columns); `auto`: attributes for a run trained on a customer table alone, else "
            "features."
        ),
    )
    observation_end: _dt.date | None = Field(
        default=None,
        description="Attributes: the date that date columns are counted back from.",
    )


class ScoreOrders(BaseModel):
    """Score customers from their order lines."""

    model_config = ConfigDict(extra="forbid")

    orders: list[OrderLine] = Field(
        min_length=1,
        max_length=MAX_ORDER_LINES,
        description=(
            f"Order lines (at most {MAX_ORDER_LINES:,}), turned into features as "
            "`segmint predict` does, with the run's cleaning rules; rejected lines are listed."
        ),
    )
    observation_end: _dt.date | None = Field(
        default=None,
        description=(
            "The date the features are measured at (recency, tenure). Default: the run's "
            "setting, else the day after the last line given — for one customer's lines that "
            "is the day after their last order, so pass today's date to score as of now."
        ),
    )


def _kind(body: Any) -> str:
    """Which request a body is: order lines when it has ``orders``, else customers."""
    if isinstance(body, ScoreOrders) or (isinstance(body, dict) and "orders" in body):
        return "orders"
    return "customers"


class ScoreRequest(
    RootModel[
        Annotated[
            Annotated[ScoreCustomers, Tag("customers")] | Annotated[ScoreOrders, Tag("orders")],
            Discriminator(_kind),
        ]
    ]
):
    """Customers to score: `{"customers": [...]}` or `{"orders": [...]}` (exactly one)."""


class CustomerScore(BaseModel):
    """A customer's scores (`prob_<segment>` for each segment when the method gives
    probabilities)."""

    model_config = ConfigDict(extra="allow")

    customer_id: str
    segment: int = Field(description="The segment's number; -1 for outliers (density methods).")
    segment_name: str
    confidence: float = Field(ge=0, le=1, description="How clearly the customer belongs, 0..1.")
    low_confidence: bool | None = Field(
        default=None, description="Top probability below the run's threshold (mixture methods)."
    )
    churn_probability: float | None = Field(
        default=None, description="P(no purchase within the churn horizon), runs with churn."
    )


class Rows(BaseModel):
    read: int = Field(description="Records received.")
    kept: int = Field(description="Records used (order lines: purchases and returns).")
    quarantined: dict[str, int] = Field(description="Rejected records by reason.")


class Rejected(BaseModel):
    index: int = Field(description="Position of the rejected record in the request (0-based).")
    reason: str = Field(description="Why it was rejected (the reasons of `segmint predict`).")


class ScoreResponse(BaseModel):
    """The scores, in the order of the customers' ids (order lines) or as given."""

    run: str = Field(description="The run whose model scored.")
    customers: list[CustomerScore]
    rows: Rows
    quarantined: int = Field(description="How many records were rejected.")
    rejected: list[Rejected]
    not_scored: int = Field(description="Customers with returns but no purchase (not scored).")
    observation_end: LocalDateTime | None = Field(
        description="Order lines: when the features were measured (on the data's clock)."
    )


_models_lock = threading.Lock()
# Scoring is CPU work under the GIL: threads doing it at once in one process only fight
# for the interpreter (10 at once served 45% fewer requests/s than one at a time), so a
# process scores one request at a time and the others wait without contending.
_cpu = threading.Lock()


def models(request: Request) -> ModelCache:
    """The server's model cache (``app.state.models``), made on first use if the app has
    none."""
    state = request.app.state
    with _models_lock:
        found = getattr(state, "models", None)
        if found is None:
            server: ServerSettings = state.server
            found = state.models = ModelCache(server.model_cache_size, freeze_gc=True)
    return found


RESOLVED_FOR_S = 1.0  # how long a resolved run reference is reused
_resolved: dict[tuple[str, str], tuple[float, Run]] = {}
_resolved_lock = threading.Lock()


def _resolve(request: Request, ref: str) -> Run:
    """``deps.segmentation_run``, its answer reused for ``RESOLVED_FOR_S`` (the registry
    query is a tenth of a request's time): a tag or ``latest`` moved to another run is
    followed within a second. A deleted run is never scored: its model files are gone and
    the model cache checks them on every request (404)."""
    ws = workspace(request)
    key, now = (str(ws.root), ref), time.monotonic()
    with _resolved_lock:
        hit = _resolved.get(key)
    if hit is not None and now - hit[0] < RESOLVED_FOR_S:
        return hit[1]
    run = segmentation_run(ref, ws)
    with _resolved_lock:
        if len(_resolved) >= 1024:
            _resolved.clear()
        _resolved[key] = (now, run)
    return run


async def _raw_body(request: Request) -> bytes:
    return await request.body()


BodyDep = Annotated[bytes, Depends(_raw_body)]


@router.post(
    "/runs/{ref}/score",
    summary="Score customers in real time (from features, attributes or order lines)",
    response_model=None,
    responses={
        200: {"model": ScoreResponse, "description": "The customers' scores"},
        **error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(ScoreRequest)}},
        }
    },
)
def score(ref: RunRef, request: Request, body: BodyDep) -> Response:
    # The run is resolved here rather than by a RunDep dependency: a sync dependency is a
    # thread hop of its own, and this route is on the real-time path.
    # The registry lookup and a first load of the model wait on I/O: outside the CPU lock.
    run = _resolve(request, ref)
    model = models(request).get(run.folder)
    with _cpu:
        try:
            req = ScoreRequest.model_validate_json(body).root
        except ValidationError as exc:
            raise RequestValidationError(_body_errors(exc)) from None
        if isinstance(req, ScoreOrders):
            records = [line.model_dump(exclude_unset=True) for line in req.orders]
            scored = score_orders(model, records, observation_end=req.observation_end)
        else:
            records = [_customer(c) for c in req.customers]
            scored = score_customers(
                model, records, records_as=req.input, observation_end=req.observation_end
            )
        answer = pydantic_core.to_json(_answer(run.record.id, scored))
    return Response(answer, media_type=JSON)


JSON = "application/json"


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]


def _customer(c: CustomerRecord) -> dict[str, Any]:
    out = dict(c.__pydantic_extra__ or {})
    out["customer_id"] = c.customer_id
    return out


def _answer(run_id: str, scored: Scored) -> dict[str, Any]:
    rows = scored.rows
    end = scored.observation_end
    return {
        "run": run_id,
        "customers": scored.records(),
        "rows": rows,
        "quarantined": sum(rows["quarantined"].values()),
        "rejected": scored.rejected(),
        "not_scored": int(scored.info.get("customers_only_returns", 0)),
        "observation_end": end.isoformat() if end is not None else None,
    }
