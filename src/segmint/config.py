"""One settings model for the CLI, config files, the Python API and the docs.

A run is reproduced by its settings: ``Settings.from_file`` reads TOML or YAML, the CLI
overlays its flags, and ``Settings.hash()`` identifies the run in every artifact.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from segmint.exceptions import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _iso_date(value: str | None) -> str | None:
    """An ISO date or date-time, checked here so a typo ('yesterday', '12/10/2011') is a
    configuration error and not a crash deep in the run."""
    if value is None:
        return None
    import datetime as _dt

    try:
        _dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError("must be an ISO date such as 2011-12-10 (or 2011-12-10T08:00)") from None
    return str(value)


class Columns(_Model):
    """Map the user's column names to canonical ones; unset names are auto-detected."""

    customer_id: str | None = None
    order_id: str | None = None
    ts: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    amount: str | None = None
    product_id: str | None = None
    category: str | None = None
    channel: str | None = None
    country: str | None = None

    def overrides(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class Cleaning(_Model):
    """Row rules for order lines. Every rejected row is quarantined with its reason."""

    cancellation_prefix: str | None = Field(
        "C", description="Order ids starting with this mark a cancellation (None: no prefix rule)."
    )
    returns: Literal["features", "quarantine"] = Field(
        "features",
        description="Cancellations and negative quantities: kept as return features, or rejected.",
    )
    drop_duplicates: bool | None = Field(
        None,
        description=(
            "Quarantine exact duplicate rows. Default: when the lines have an order id (the "
            "same line of the same order twice is a double export); without one, two identical "
            "lines are two purchases of the same thing on the same day and are kept."
        ),
    )
    drop_negative_price: bool = Field(True, description="Quarantine negative prices.")
    zero_price: Literal["purchase", "quarantine"] = Field(
        "purchase",
        description=(
            "Lines with a price (or amount) of zero: kept as purchases worth nothing (a free item "
            "or a zero-value order is still a purchase event, as the BG/NBD literature counts "
            "it), or quarantined."
        ),
    )
    drop_future_dates: bool = Field(True, description="Quarantine rows dated after max_date.")
    max_date: str | None = Field(
        None, description="Latest plausible timestamp (ISO); default: the time of the run."
    )
    min_date: str | None = Field(
        "1990-01-01",
        description=(
            "Order lines dated before this (ISO) are quarantined as implausible_date: "
            "placeholders such as 1900-01-01 are not purchases. None: no floor."
        ),
    )
    _dates = field_validator("max_date", "min_date")(_iso_date)

    max_duplicate_id_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description=(
            "A customer table whose rows repeat a customer id more often than this share stops "
            "the run (it is probably order lines); below it the repeats are quarantined."
        ),
    )
    max_invalid_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description=(
            "Unparseable values in a column are quarantined while they are at most this share of "
            "its non-empty values; above it the column is taken as mis-mapped and the run stops."
        ),
    )


class Preprocess(_Model):
    log_skew_threshold: float = Field(
        1.0, ge=0, description="Log-transform non-negative features with |skewness| above this."
    )
    clip_iqr: float = Field(
        3.0, gt=0, description="Clip values beyond Q1 - c*IQR and Q3 + c*IQR (after log)."
    )
    max_categories: int = Field(12, ge=2, description="One-hot at most this many levels.")


ALGORITHMS = (
    "kmeans",
    "minibatch",
    "bisecting",
    "ward",
    "average",
    "complete",
    "gmm",
    "dbscan",
    "hdbscan",
    "ensemble",
    "kprototypes",
)


class Clustering(_Model):
    algorithm: Literal[(*ALGORITHMS, "all")] = Field(  # type: ignore[valid-type]
        "kmeans",
        description=(
            "kmeans | minibatch | bisecting (k-means family), ward | average | complete "
            "(hierarchical), gmm (Gaussian mixture), dbscan | hdbscan (density; noise = -1), "
            "ensemble (consensus of k-means, mixture and Ward over resamples), kprototypes "
            "(mixed numeric + categorical), "
            "all (compare every method and use the recommended one)"
        ),
    )
    k: int | None = Field(None, ge=2, description="Fix the number of segments.")
    k_min: int = Field(2, ge=2)
    k_max: int = Field(10, ge=2)
    n_init: int = Field(4, ge=1, description="k-means++ starts for the final model.")
    sweep_sample: int = Field(
        200_000, ge=1000, description="Customers used to fit each candidate k."
    )
    silhouette_sample: int = Field(10_000, ge=100, description="Customers for silhouette.")
    bootstrap: int = Field(200, ge=10, description="Bootstrap resamples for silhouette CI.")
    min_segment_share: float = Field(
        0.005, ge=0, lt=0.5, description="A k whose smallest segment is smaller is not eligible."
    )
    max_fit_sample: int = Field(
        10_000,
        ge=100,
        le=100_000,
        description=(
            "Hierarchical and density methods are O(n^2): above this many customers they fit "
            "on a sample and extend to everyone (nearest centre / nearest core point)."
        ),
    )
    covariance: Literal["full", "diag"] = Field("full", description="Gaussian mixture shape.")
    low_confidence: float = Field(
        0.6, gt=0, le=1, description="Mixture: flag customers whose top posterior is below."
    )
    eps: float | None = Field(
        None, gt=0, description="DBSCAN radius; default: the knee of the k-distance curve."
    )
    min_samples: int | None = Field(
        None, ge=2, description="DBSCAN/HDBSCAN density threshold; default: 2 x features."
    )
    min_cluster_size: int | None = Field(
        None, ge=2, description="HDBSCAN smallest segment; default: 1% of the fitted rows."
    )
    stability_runs: int = Field(
        5, ge=0, le=100, description="Refits on subsamples to measure stability (0: skip)."
    )
    stability_sample: int = Field(
        5000, ge=100, description="Customers the stability refits are compared on."
    )

    @model_validator(mode="after")
    def _range(self) -> Clustering:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) must be >= k_min ({self.k_min})")
        return self


STRATEGY_FIELDS = ("channel", "offer", "discount", "message", "kpi")
StrategyField = Literal["channel", "offer", "discount", "message", "kpi"]


class Clv(_Model):
    """Probabilistic CLV (BG/NBD + Gamma-Gamma) computed for order-line runs."""

    enabled: bool = Field(True, description="Fit the CLV models and add their columns.")
    time_unit: Literal["days", "weeks"] = Field(
        "weeks",
        description=(
            "Unit of recency, age and the horizon; repeat purchases are counted per calendar "
            "day (several orders on one day count once)."
        ),
    )
    horizon_months: int = Field(12, ge=1, le=120, description="CLV and expected-purchase horizon.")
    annual_discount: float = Field(0.10, ge=0, lt=1, description="Annual discount rate for CLV.")

    @property
    def unit_days(self) -> int:
        return 7 if self.time_unit == "weeks" else 1


class Churn(_Model):
    """Churn risk from earlier snapshots (see ``segmint.predictive.churn``)."""

    enabled: bool = Field(True, description="Train and score the churn model in order-line runs.")
    horizon_days: int = Field(
        90, ge=7, le=730, description="Churned: no purchase within this many days of a snapshot."
    )
    train_snapshots: int = Field(3, ge=1, le=24, description="Training snapshots, at most.")
    step_days: int = Field(30, ge=1, description="Days between training snapshots.")
    min_history_days: int = Field(
        90, ge=0, description="History needed before the first training snapshot."
    )
    sample_customers: int = Field(
        100_000, ge=1000, description="Customers (hash sample) in the training/test snapshots."
    )


class Explain(_Model):
    """Statistics, drivers and anomalies computed for every run."""

    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level after correction.")
    posthoc_sample: int = Field(
        5000, ge=20, description="Customers per segment in pairwise post-hoc tests."
    )
    drivers: bool = Field(True, description="Fit the surrogate model and permutation importance.")
    drivers_sample: int = Field(20_000, ge=200, description="Customers for the surrogate.")
    drivers_repeats: int = Field(5, ge=2, description="Permutations per feature.")
    anomalies_top: int = Field(50, ge=1, description="Most anomalous customers listed.")
    anomaly_threshold: float = Field(
        0.6, gt=0, lt=1, description="Flag customers whose Isolation Forest score exceeds this."
    )
    anomaly_fit_sample: int = Field(
        100_000, ge=256, description="Customers used to fit the Isolation Forest."
    )


class Personas(_Model):
    """Rules that turn profiles into personas (see ``segmint.explain.personas``)."""

    min_effect: float = Field(
        0.3, gt=0, description="Standardized difference that counts as a trait (in sd)."
    )
    min_rfm_share: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Name a segment after its most common RFM segment only above this share.",
    )
    overdue_factor: float = Field(
        2.0, gt=0, description="Overdue: days since last order > factor × own mean gap."
    )
    value_column: str | None = Field(
        None, description="Column holding spend/revenue (default: monetary when present)."
    )
    # the allowed field names are in the type, so the API's schema says them too
    strategies: dict[str, dict[StrategyField, str]] = Field(
        default_factory=dict,
        description=(
            "Per archetype (e.g. 'At Risk', 'High value'), override any of: "
            + ", ".join(STRATEGY_FIELDS)
        ),
    )

    @model_validator(mode="after")
    def _fields(self) -> Personas:
        bad = sorted(
            f"{arch}.{f}"
            for arch, fields in self.strategies.items()
            for f in fields
            if f not in STRATEGY_FIELDS
        )
        if bad:
            raise ValueError(
                f"unknown strategy field(s) {sorted(bad)}; allowed: {', '.join(STRATEGY_FIELDS)}"
            )
        return self


class Settings(_Model):
    """Everything that determines a run. Paths are not part of the hash; content is."""

    inputs: list[str] = Field(default_factory=list, description="Order lines and/or customers.")
    kind: Literal["auto", "transactions", "customers"] = "auto"
    delimiter: str | None = Field(None, description="CSV delimiter; default: sniffed.")
    date_format: str | None = Field(
        None,
        description=(
            "strptime format of the dates, e.g. '%m/%d/%Y'; default: detected, and asked for "
            "when the dates read both day-first and month-first."
        ),
    )
    decimal: Literal[".", ","] | None = Field(
        None,
        description=(
            "Decimal separator of numbers written as text; default: decided per column from "
            "all its values (a column mixing both is refused)."
        ),
    )
    max_columns: int = Field(
        1000,
        ge=2,
        description=(
            "Refuse input files with more columns (every column is typed, profiled and "
            "explained, so time grows with the width)."
        ),
    )
    memory_limit: str | None = Field(
        None,
        description=(
            "Cap on the query engine's memory, e.g. '3GB'; beyond it DuckDB spills to disk "
            "(slower, smaller). Default: DuckDB's own (80% of RAM)."
        ),
    )
    out: str | None = Field(
        None, description="Run folder; default: a new folder in the workspace (runs/<id>)."
    )
    columns: Columns = Field(default_factory=Columns)
    cleaning: Cleaning = Field(default_factory=Cleaning)
    features: list[str] | None = Field(None, description="Restrict to these features.")
    observation_end: str | None = Field(
        None,
        description=(
            "ISO date ending the observation window (on or after the last order); default: "
            "the day after the last order."
        ),
    )
    _observation_end = field_validator("observation_end")(_iso_date)

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise ValueError("must be a strptime format such as '%m/%d/%Y' or '%d.%m.%Y %H:%M'")
        return value

    top_categories: int = Field(5, ge=0, description="Spend-share features for top categories.")
    derive: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "New customer-table columns from arithmetic on others, e.g. "
            "{'Total_Spend': 'MntWines + MntFruits'}."
        ),
    )
    clv: Clv = Field(default_factory=Clv)
    churn: Churn = Field(default_factory=Churn)
    preprocess: Preprocess = Field(default_factory=Preprocess)
    clustering: Clustering = Field(default_factory=Clustering)
    explain: Explain = Field(default_factory=Explain)
    report_charts: bool = Field(
        False, description="Also write every report chart as a standalone HTML file (charts/)."
    )
    personas: Personas = Field(default_factory=Personas)
    seed: int = 0

    @classmethod
    def from_file(cls, path: str | Path) -> Settings:
        p = Path(path)
        if not p.is_file():
            raise ConfigError([f"config file {str(p)!r} does not exist"], settings=("config",))
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            elif p.suffix.lower() in {".yaml", ".yml"}:
                data = yaml.safe_load(text) or {}
            else:
                raise ConfigError([f"config file {str(p)!r} must end in .toml, .yaml or .yml"])
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise ConfigError([f"config file {str(p)!r} is not valid: {exc}"]) from None
        return cls.build(data)

    @classmethod
    def build(cls, data: dict[str, Any]) -> Settings:
        """Validate a plain dict, raising one ConfigError that lists every problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems, settings = [], []
            for err in exc.errors():
                where = ".".join(str(x) for x in err["loc"]) or "settings"
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"{where}: {msg} (got {err.get('input')!r})")
                settings.append(where)
            raise ConfigError(problems, settings=settings) from None

    def merged(self, overrides: dict[str, Any]) -> Settings:
        """Return a copy with nested overrides applied (None values are ignored)."""
        data = self.model_dump()
        _deep_update(data, overrides)
        return Settings.build(data)

    def hash(self) -> str:
        payload = self.model_dump(exclude={"inputs", "out", "memory_limit", "report_charts"})
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
