"""Score new customers with a saved model: same reading, cleaning and features as training.

Two ways in, one answer:

- ``predict_detailed`` / ``predict``: files or DataFrames, read and cleaned through the
  engine exactly as the training data were (``segmint predict``);
- ``score_customers`` / ``score_orders``: JSON-like records, as the REST API receives them
  (``POST /v1/runs/{RUN}/score``), answered in about a millisecond. Their scores are those
  ``predict_detailed`` gives on the same data (``tests/test_scoring_api.py`` checks every
  customer of real runs): customer records carry the model's feature values and go straight
  to the model (``scoring_fast``), or, for a run trained on a customer table, its attribute
  columns, which go through the same cleaning as ``predict``; order lines are cleaned and
  turned into features by ``scoring_lines``, the same rules for a request's typed lines.

``score_columns`` is the one choice of the columns a caller is given (the CLI's
``predict`` output and the API's response): ``customer_id, segment, segment_name,
confidence``, then ``prob_<segment>`` and ``low_confidence`` for methods with probabilities
and ``churn_probability`` for runs with a churn model.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from segmint.config import Settings
from segmint.data import readers
from segmint.data.ingest import Ingested, ingest, quarantine_frame
from segmint.exceptions import InputError
from segmint.features import build_features
from segmint.features.behaviour import default_observation_end
from segmint.model import SegmentationModel
from segmint.pipeline.scoring_fast import fast_model
from segmint.pipeline.scoring_features import check_end, line_features
from segmint.pipeline.scoring_lines import clean_lines
from segmint.pipeline.scoring_records import (
    ORDER_COLUMNS,
    Records,
    customer_id_of,
    feature_values,
    order_columns,
)

__all__ = [
    "ORDER_COLUMNS",
    "Prediction",
    "Records",
    "Scored",
    "feature_columns",
    "order_columns",
    "predict",
    "predict_detailed",
    "score_columns",
    "score_customers",
    "score_orders",
    "select_scores",
]

BASE_COLUMNS = ("customer_id", "segment", "segment_name", "confidence")
FLAG_COLUMNS = ("low_confidence", "churn_probability")


@dataclass(frozen=True)
class Prediction:
    """Scores of new customers, with the input's row accounting and its rejected rows."""

    scores: pd.DataFrame
    rows: dict[str, Any]
    quarantine: pd.DataFrame
    info: dict


@dataclass(frozen=True)
class Scored:
    """Scores of a request's customers (``scores``, as ``predict_frame`` gives them;
    ``columns`` are those a caller is given, ``score_columns``), the row accounting of its
    records (``read = kept + sum(quarantined)``), the rejected records (0-based positions
    in the request and their reasons), the observation end the features were measured at
    (order lines) and counts worth reporting (``customers_only_returns``)."""

    scores: pd.DataFrame
    rows: dict[str, Any]
    rejected_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rejected_reasons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    observation_end: _dt.datetime | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return score_columns(self.scores)

    def records(self) -> list[dict[str, Any]]:
        """One dict of plain Python values per customer, in ``columns`` order."""
        cols = self.columns
        values = [self.scores[c].tolist() for c in cols]
        return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]

    def rejected(self) -> list[dict[str, Any]]:
        """``{"index", "reason"}`` for each rejected record."""
        return [
            {"index": i, "reason": r}
            for i, r in zip(
                self.rejected_rows.tolist(), self.rejected_reasons.tolist(), strict=True
            )
        ]


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The columns a caller is given, in order: ``customer_id, segment, segment_name,
    confidence``, then ``prob_*``, ``low_confidence`` and ``churn_probability`` where the
    scores have them."""
    extra = [c for c in scores.columns if c.startswith("prob_") or c in FLAG_COLUMNS]
    return [*BASE_COLUMNS, *extra]


def select_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` restricted to ``score_columns``."""
    return scores[score_columns(scores)]


def feature_columns(model: SegmentationModel) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns a customer record must carry for ``model``:
    the segmentation's features and the churn model's inputs."""
    numeric = list(model.numeric)
    categorical = list(model.categorical)
    for c in model.churn["features"] if model.churn else []:
        if c not in numeric and c not in categorical:
            numeric.append(c)
    return numeric, categorical


# -- files and DataFrames (segmint predict) ------------------------------------------------
def predict_detailed(
    model: SegmentationModel, data: Any, *, observation_end: str | None = None
) -> Prediction:
    """Score ``data`` (path, DataFrame, or a list of them) with ``model``."""
    inputs = data if isinstance(data, list) else [data]
    settings, end = _settings(Settings.build(model.meta["settings"]), observation_end)
    with readers.engine(memory_limit=settings.memory_limit) as con:
        ing = ingest(inputs, settings, con, reference=end)
        return _score(model, ing, settings, end)


def _settings(
    settings: Settings,
    observation_end: str | _dt.date | None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Settings, _dt.datetime | None]:
    """The run's ``settings`` with ``observation_end`` and ``overrides``, and the end they
    fix."""
    changes = dict(overrides or {})
    if observation_end:
        changes["observation_end"] = (
            observation_end.isoformat()
            if isinstance(observation_end, _dt.date)
            else str(observation_end)
        )
    if changes:
        settings = settings.merged(changes)
    end = _dt.datetime.fromisoformat(settings.observation_end) if settings.observation_end else None
    return settings, end


def _check_kinds(model: SegmentationModel, kinds_now: set[str], path: str) -> None:
    kinds_trained = set(model.meta.get("kinds", []))
    if kinds_trained != kinds_now:
        raise InputError(
            f"the model was trained on {' + '.join(sorted(kinds_trained))} data but was given "
            f"{' + '.join(sorted(kinds_now))} data.",
            expected="inputs of the same kind(s) as the training run",
            path=path,
        )


def _check_features(model: SegmentationModel, columns: Any, path: str) -> None:
    """``predict``'s refusal of data without a feature the model (or its churn model) uses;
    ``columns`` is a DataFrame's columns or a dict of columns."""
    churn_inputs = model.churn["features"] if model.churn else []
    needed = [*model.numeric, *model.categorical, *churn_inputs]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(
            f"the data lacks feature(s) the model uses: {', '.join(map(repr, missing))}.",
            expected="the same attribute columns as the training data",
            path=path,
            code="input.missing_column",
        )


def _score(
    model: SegmentationModel, ing: Ingested, settings: Settings, end: _dt.datetime | None
) -> Prediction:
    path = ", ".join(i["path"] for i in ing.inputs)
    _check_kinds(model, {i["kind"] for i in ing.inputs}, path)
    feats = build_features(
        ing.transactions,
        ing.customers,
        observation_end=end,
        categories=model.meta.get("categories"),
        clv=settings.clv if model.meta.get("clv_params") else None,
        clv_params=model.meta.get("clv_params"),
    )
    _check_features(model, feats.frame.columns, path)
    return Prediction(model.predict_frame(feats.frame), ing.rows, quarantine_frame(ing), feats.info)


def predict(model: SegmentationModel, data: Any, **kwargs: Any) -> pd.DataFrame:
    """``customer_id, segment, segment_name, distance, confidence`` for each customer."""
    return predict_detailed(model, data, **kwargs).scores


# -- JSON-like records (the REST API) -------------------------------------------------------
def score_customers(
    model: SegmentationModel,
    records: Records,
    *,
    records_as: Literal["auto", "features", "attributes"] = "auto",
    observation_end: str | _dt.date | None = None,
) -> Scored:
    """Score customer records (``customer_id`` plus values).

    ``records_as="features"``: each record carries the model's feature columns
    (``feature_columns``; ``None`` is a missing value, imputed as for any customer); they
    are scored directly. ``"attributes"``: the records are rows of a customer table, cleaned
    and typed as ``predict`` does (for runs trained on a customer table; typing reads the
    whole batch, so very small batches can be refused where a column looks constant).
    ``"auto"``: attributes for a run trained on a customer table alone, else features.
    """
    if not records:
        raise InputError("no customer was given.", expected="at least one customer record")
    kinds = set(model.meta.get("kinds", []))
    if records_as == "auto":
        records_as = "attributes" if kinds == {"customers"} else "features"
    if records_as == "attributes":
        return _score_attributes(model, records, observation_end)
    fast = fast_model(model)
    frame, numeric = feature_values(records, *feature_columns(model))
    scores = fast.predict(frame, numeric[:, : len(fast.numeric)])
    n = len(records)
    return Scored(scores, {"read": n, "kept": n, "quarantined": {}})


def score_orders(
    model: SegmentationModel,
    records: Records,
    *,
    observation_end: str | _dt.date | None = None,
    now: _dt.datetime | None = None,
) -> Scored:
    """Score customers from their order lines (``ORDER_COLUMNS`` plus optional
    ``product_id``, ``category``, ``channel``, ``country``): cleaned with the run's rules
    (rejected lines are counted and listed, as ``predict`` quarantines them) and turned
    into features as ``predict`` does, measured at ``observation_end`` (default: the run's
    setting, else the day after the last line given). ``now`` is the time after which
    lines are future-dated (default: the current time)."""
    if not records:
        raise InputError("no order line was given.", expected="at least one order line")
    # the run's settings, validated once per model
    settings, end = _settings(fast_model(model).settings, observation_end)
    path = "orders"
    _check_kinds(model, {"transactions"}, path)
    raw = order_columns(records)
    clean = clean_lines(raw, settings.cleaning, now=now or _dt.datetime.now())
    if not clean.purchases:
        _nothing_kept(clean.rows, clean.returns, path)
    end = end or default_observation_end(clean.last_ts)
    check_end(clean, end, path)
    numeric, categorical = feature_columns(model)
    frame, info = line_features(
        clean,
        end=end,
        categories=model.meta.get("categories"),
        clv=settings.clv if model.meta.get("clv_params") else None,
        clv_params=model.meta.get("clv_params"),
        needed=[*numeric, *categorical],
    )
    _check_features(model, frame, path)
    scores = fast_model(model).predict(frame)
    return Scored(scores, clean.rows, clean.rejected_rows, clean.rejected_reasons, end, info)


def _nothing_kept(rows: dict[str, Any], returns: int, path: str) -> None:
    """``data.ingest``'s refusal when cleaning left no purchase."""
    q = rows["quarantined"]
    reasons = ", ".join(f"{r}: {n:,}" for r, n in q.items()) or "none"
    ret = f" and {returns:,} are returns" if returns else ""
    raise InputError(
        f"no purchases are left after cleaning: of {rows['read']:,} rows, "
        f"{sum(q.values()):,} were quarantined ({reasons}){ret}. There is nothing to segment.",
        expected=(
            "rows that pass the cleaning rules (see the reasons; dates after the run time are "
            "'future_date', cancellations and negative quantities are returns)"
        ),
        path=path,
    )


def _score_attributes(
    model: SegmentationModel, records: Records, observation_end: str | _dt.date | None
) -> Scored:
    """Customer-table records through the same ingest, typing and features as predict."""
    columns: dict[str, None] = {}
    for i, r in enumerate(records):
        customer_id_of(r, i)
        if any(not str(key).strip() for key in r):
            raise InputError(
                f"customer {i} has a field with an empty name.",
                row=i,
                expected="every field named after a column of the customer table",
            )
        columns.update(dict.fromkeys(r))
    frame = pd.DataFrame(
        {c: [r.get(c) for r in records] for c in columns}, columns=list(columns)
    ).astype(object)
    frame["customer_id"] = frame["customer_id"].map(str)
    settings, end = _settings(fast_model(model).settings, observation_end, {"kind": "customers"})
    settings = settings.model_copy(update={"columns": type(settings.columns)()})
    try:
        with readers.engine(memory_limit=settings.memory_limit) as con:
            ing = ingest([frame], settings, con, reference=end)
            pred = _score(model, ing, settings, end)
    except InputError as exc:
        if exc.code != "input.missing_column" or len(records) >= 50:
            raise
        raise InputError(
            f"{exc} A customer table's columns are typed from the values given, as for "
            f"'segmint predict': in {len(records)} record(s) a column with a single value "
            "is dropped as constant. Send more customers at once, or the model's feature "
            "values (records as features).",
            column=exc.column,
            expected=exc.expected,
            code="input.missing_column",
            settings=exc.settings,
        ) from None
    q = pred.quarantine
    rejected = pd.DataFrame(
        {
            "index": q[readers.ROW].to_numpy(dtype=np.int64) - 1,
            "reason": q["reason"].astype(str).to_numpy(),
        }
    )
    return Scored(select_scores(pred.scores), pred.rows, rejected, end, pred.info)
