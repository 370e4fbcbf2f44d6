"""The values a run produces: ``RunManifest`` (the one schema) and the result objects.

``RunManifest`` is a pydantic model: ``manifest.json`` is its ``model_dump_json()``, the CLI
prints it, the report and ``summary.md`` read it by attribute, the registry copies its
numbers, and the REST API's OpenAPI document is generated from it. ``RunResult``,
``ClvValidation`` and ``Tracking`` are plain values: no file handles, no database
connections, no methods that read or write. Saving is ``segmint.store``'s job and loading
(``segmint.load_run``) builds the same ``RunResult`` with its large tables read from Parquet
on first access.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_serializer

from segmint.config import Settings
from segmint.evaluate.select_k import Decision
from segmint.explain import Insights
from segmint.explain.effect import EffectResult
from segmint.features import CustomerFeatures
from segmint.model import SegmentationModel

# manifest.json's layout; a manifest with a newer number is refused, older ones are read
MANIFEST_SCHEMA = 1

__all__ = [
    "MANIFEST_SCHEMA",
    "ClvValidation",
    "EffectResult",
    "LocalDateTime",
    "MethodComparison",
    "RunManifest",
    "RunResult",
    "Tracking",
    "finite",
]


class _Open(BaseModel):
    """A section whose known fields are typed; methods and versions may add more."""

    model_config = ConfigDict(extra="allow")


class Rows(_Open):
    read: int
    kept: int
    quarantined: dict[str, int] = Field(default_factory=dict)
    purchases: int | None = None
    returns: int | None = None


class InputInfo(_Open):
    """One input: where it was read from and what it held (``sha256`` identifies it)."""

    path: str
    format: str | None = None
    kind: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    delimiter: str | None = None
    encoding: str | None = None
    columns: dict[str, str | None] = Field(default_factory=dict)
    rows: Rows | None = None


class Metrics(_Open):
    algorithm: str
    silhouette: float | None = None
    silhouette_ci95: list[float | None] | None = None
    silhouette_sample: int | None = None
    calinski_harabasz: float | None = None
    davies_bouldin: float | None = None
    inertia: float | None = None
    noise_customers: int = 0
    noise_share: float = 0.0
    stability_ari: float | None = None
    stability_note: str | None = None
    unstable_segments: list[int] = Field(default_factory=list)


class FeatureInfo(_Open):
    numeric: list[str]
    categorical: list[str]
    descriptive: list[str] = Field(default_factory=list)
    dropped: dict[str, str] = Field(default_factory=dict)
    # every column of the feature frame (features, descriptive columns, churn scores)
    columns: list[str] = Field(default_factory=list)


class ExplainInfo(_Open):
    tests: int
    meaningful_differences: list[str] = Field(default_factory=list)
    drivers_fidelity: dict[str, Any] | None = None
    anomalies_flagged: int = 0
    anomaly_signals: list[str] = Field(default_factory=list)
    headline: dict[str, Any] = Field(default_factory=dict)


class Selection(_Open):
    """How k was chosen: the range, the ks tried, each criterion's vote and the reason."""

    algorithm: str
    compared: str | None = None
    k_range: list[int]
    k_tried: list[int]
    fixed_k: int | None = None
    votes: dict[str, int | None] = Field(default_factory=dict)
    reason: str


class Artifact(BaseModel):
    sha256: str
    bytes: int


# A time on the data's own clock: order timestamps carry no zone, so it is written as ISO 8601
# without a UTC offset ("2025-12-31T00:00:00"), which is not the RFC 3339 `date-time` a plain
# datetime field would claim in the JSON schema (and so in the API's OpenAPI document).
LocalDateTime = Annotated[
    _dt.datetime,
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO 8601 date and time on the data's clock, without a UTC offset.",
            "examples": ["2025-12-31T00:00:00"],
        }
    ),
]


class RunManifest(BaseModel):
    """What a run did, on which data, with which settings and how well: ``manifest.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = MANIFEST_SCHEMA
    version: str
    created: _dt.datetime
    rows: Rows
    customers: int
    k: int
    metrics: Metrics
    config: Settings
    config_hash: str
    timings: dict[str, float] = Field(default_factory=dict)
    inputs: list[InputInfo]
    observation_end: LocalDateTime | None = None
    features: FeatureInfo
    customers_detail: dict[str, Any] = Field(default_factory=dict)
    clv: dict[str, Any] | None = None
    churn: dict[str, Any] | None = None
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    explain: ExplainInfo
    selection: Selection
    warnings: list[str] = Field(default_factory=list)
    # hashes of model.skops, customers.parquet, config.yaml: a folder mixing runs is refused
    artifacts: dict[str, Artifact] = Field(default_factory=dict)

    @field_serializer("created")
    def _created(self, value: _dt.datetime) -> str:
        return value.isoformat(timespec="seconds")  # as the model file's meta writes it

    def to_json(self) -> str:
        """``manifest.json``'s text: what is unknown or undefined (NaN) is left out."""
        clean = self.model_validate(finite(self.model_dump(mode="json")))
        return clean.model_dump_json(indent=2, exclude_none=True)


@dataclass(frozen=True)
class MethodComparison:
    """A ``compare`` run's method table (one row per method), the methods × methods ARI
    agreement, and the recommended method with the reason."""

    table: pd.DataFrame
    agreement: pd.DataFrame
    recommended: str
    reason: str


T = TypeVar("T")


class Deferred(Generic[T]):
    """A value read on first access (a loaded run's large tables and its model)."""

    def __init__(self, load: Callable[[], T]) -> None:
        self.load = load


class _Lazy:
    """A dataclass field that resolves a ``Deferred`` on first access and keeps the value."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            raise AttributeError  # no default: the dataclass field is required
        value = obj.__dict__[self.slot]
        if isinstance(value, Deferred):
            value = value.load()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class RunResult:
    """Everything a segmentation run produced, as plain values.

    ``segmint.run`` / ``segmint.segment`` return one; ``segmint.save(result)`` writes its
    folder and registers it; ``segmint.load_run(ref)`` returns the same shape from a saved
    run (``customers``, ``quarantine``, ``features``, ``insights`` and ``model`` are read on
    first access).
    """

    settings: Settings
    manifest: RunManifest
    customers: pd.DataFrame = _Lazy()  # type: ignore[assignment]
    segments: pd.DataFrame
    k_selection: pd.DataFrame
    decision: Decision
    model: SegmentationModel = _Lazy()  # type: ignore[assignment]
    features: CustomerFeatures = _Lazy()  # type: ignore[assignment]
    insights: Insights = _Lazy()  # type: ignore[assignment]
    embedding_sample: pd.DataFrame = field(repr=False)
    quarantine: pd.DataFrame = _Lazy()  # type: ignore[assignment]
    diagnostics: dict[str, Any] = field(default_factory=dict, repr=False)
    comparison: MethodComparison | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        return self.manifest.k

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.manifest.preprocessing


@dataclass
class ClvValidation:
    """BG/NBD + Gamma-Gamma fitted on a calibration period and checked on a holdout.

    Attributes
    ----------
    params : DataFrame
        model, param, estimate, se, ci_low, ci_high.
    diagnostics : dict
        Per model: convergence, Hessian, warnings; plus the holdout totals and errors.
    holdout : DataFrame
        By calibration repeat purchases (0 .. 6, "7+"): customers, mean actual and mean
        predicted holdout purchases.
    customers : DataFrame
        Per customer: summary (x, t_x, T, m), holdout_x, predicted, p_alive.
    calibration_end, holdout_end : datetime
        The last day of the calibration period and of the holdout (both inclusive; midnight
        starting that day).
    time_unit : str
        The unit of t_x and T.
    inputs : list of dict
        The order-line input: path, sha256, rows read / kept / quarantined.
    """

    params: pd.DataFrame
    diagnostics: dict[str, Any]
    holdout: pd.DataFrame
    customers: pd.DataFrame
    calibration_end: _dt.datetime
    holdout_end: _dt.datetime
    time_unit: str
    inputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Tracking:
    """Segments followed over snapshots: what ``segmint track`` writes."""

    snapshots: list[_dt.datetime]
    assignments: pd.DataFrame  # customer_id, snapshot, segment
    # from_snapshot, to_snapshot, from_segment, to_segment, customers, share
    migration: pd.DataFrame
    sizes: pd.DataFrame  # snapshot, segment, segment_name, customers, revenue
    flows: pd.DataFrame  # snapshot, new_customers, lapsed_customers, customers
    drift: pd.DataFrame  # snapshot, feature, psi, level
    shifts: pd.DataFrame  # snapshot, segment, shift, alert
    alerts: list[str] = field(default_factory=list)
    mode: str = "assign"
    names: list[str] = field(default_factory=list)


def finite(obj: Any) -> Any:
    """JSON has no NaN: undefined numbers become null (strict parsers reject ``NaN``)."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj
