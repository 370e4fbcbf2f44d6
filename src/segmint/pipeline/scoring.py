"""Score new customers with a saved model: same reading, cleaning and features as training."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from segmint.config import Settings
from segmint.data import readers
from segmint.data.ingest import Ingested, ingest, quarantine_frame
from segmint.exceptions import InputError
from segmint.features import build_features
from segmint.model import SegmentationModel


@dataclass(frozen=True)
class Prediction:
    """Scores of new customers, with the input's row accounting and its rejected rows."""

    scores: pd.DataFrame
    rows: dict[str, Any]
    quarantine: pd.DataFrame
    info: dict


def predict_detailed(
    model: SegmentationModel, data: Any, *, observation_end: str | None = None
) -> Prediction:
    """Score ``data`` (path, DataFrame, or a list of them) with ``model``."""
    inputs = data if isinstance(data, list) else [data]
    settings = Settings.build(model.meta["settings"])
    if observation_end:
        settings = settings.merged({"observation_end": observation_end})
    end = _dt.datetime.fromisoformat(settings.observation_end) if settings.observation_end else None
    with readers.engine(memory_limit=settings.memory_limit) as con:
        ing = ingest(inputs, settings, con, reference=end)
        return _score(model, ing, settings, end)


def _score(
    model: SegmentationModel, ing: Ingested, settings: Settings, end: _dt.datetime | None
) -> Prediction:
    kinds_trained = set(model.meta.get("kinds", []))
    kinds_now = {i["kind"] for i in ing.inputs}
    if kinds_trained != kinds_now:
        raise InputError(
            f"the model was trained on {' + '.join(sorted(kinds_trained))} data but was given "
            f"{' + '.join(sorted(kinds_now))} data.",
            expected="inputs of the same kind(s) as the training run",
            path=", ".join(i["path"] for i in ing.inputs),
        )
    feats = build_features(
        ing.transactions,
        ing.customers,
        observation_end=end,
        categories=model.meta.get("categories"),
        clv=settings.clv if model.meta.get("clv_params") else None,
        clv_params=model.meta.get("clv_params"),
    )
    churn_inputs = model.churn["features"] if model.churn else []
    needed = [*model.numeric, *model.categorical, *churn_inputs]
    missing = [c for c in needed if c not in feats.frame.columns]
    if missing:
        raise InputError(
            f"the data lacks feature(s) the model uses: {', '.join(map(repr, missing))}.",
            expected="the same attribute columns as the training data",
            path=", ".join(i["path"] for i in ing.inputs),
            code="input.missing_column",
        )
    return Prediction(model.predict_frame(feats.frame), ing.rows, quarantine_frame(ing), feats.info)


def predict(model: SegmentationModel, data: Any, **kwargs: Any) -> pd.DataFrame:
    """``customer_id, segment, segment_name, distance, confidence`` for each customer."""
    return predict_detailed(model, data, **kwargs).scores
